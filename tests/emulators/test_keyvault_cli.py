"""The emulator as a foreground process: first stdout line is JSON, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def test_json_line_then_clean_stop_on_sigterm(tmp_path):
    command = [sys.executable, "-m", "localazure.emulators.keyvault", "--state", str(tmp_path / "s"), "--json"]
    process = subprocess.Popen(
        [*command, "--vault", "alpha", "--vault", "beta"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(process.stdout.readline())
        assert set(info) == {"url", "ca_bundle", "admin_url", "token", "vaults"}
        assert list(info["vaults"]) == ["alpha", "beta"] and info["url"] == info["vaults"]["alpha"]
        with requests.Session() as session:
            session.trust_env = False
            clock = session.get(f"{info['admin_url']}/clock", verify=info["ca_bundle"], timeout=10)
            challenge = session.get(f"{info['vaults']['beta']}/certificates?api-version=7.5", verify=info["ca_bundle"])
        assert clock.status_code == 200 and "now" in clock.json()
        assert challenge.status_code == 401 and "WWW-Authenticate" in challenge.headers
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    assert code == 0


def test_bad_vault_name_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "localazure.emulators.keyvault", "--state", str(tmp_path), "--vault", "x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "vault names must be" in result.stderr
