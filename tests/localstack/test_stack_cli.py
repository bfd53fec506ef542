"""`certlc local up/down` and `certlc demo` as a user runs them: separate processes, real servers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.localstack.cli import run_certlc

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack_dir(tmp_path: Path, azurite) -> Path:  # azurite: installs it (or fails loudly in CI)
    return tmp_path / "stack"


def test_local_up_prints_endpoints_and_down_stops_it(stack_dir):
    up = run_certlc("local", "up", "--dir", str(stack_dir), "--json")
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        for key in (
            "keyvault_url",
            "keyvault_admin_url",
            "ca_bundle",
            "queue_connection_string",
            "queue_name",
            "eventgrid_url",
            "logs_endpoint",
            "settings_file",
            "pid",
        ):
            assert info[key], key
        settings = json.loads(Path(info["settings_file"]).read_text())["Values"]
        sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
        assert set(settings) <= set(sample), f"local.settings.sample.json lacks {set(settings) - set(sample)}"

        status = run_certlc("--settings", info["settings_file"], "status", "--json")
        assert status.returncode == 0, status.stderr
        assert isinstance(json.loads(status.stdout), dict | list)

        again = run_certlc("local", "up", "--dir", str(stack_dir))
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        down = run_certlc("local", "down", "--dir", str(stack_dir))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not (stack_dir / "stack.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(info["pid"], 0)
    after = run_certlc("--settings", info["settings_file"], "failed", "list", timeout=30)  # its ports are dead now
    assert after.returncode == 1, after.stderr
    assert after.stderr.strip() == "certlc: the local stack is not running: run certlc local up"


@pytest.mark.parametrize("pending_version", ["placeholder", "previous"])
def test_demo_renews_what_it_should_and_exits_zero(tmp_path, azurite, pending_version):
    """In both of the Key Vault emulator's ways of showing a pending renewal (the evidence is split)."""
    demo = run_certlc("demo", "--json", "--dir", str(tmp_path / "demo"), "--keyvault-pending-version", pending_version)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    summary = json.loads(demo.stdout)
    outcomes = {c["name"]: (c["status"], c["reason"], c["versions"]) for c in summary["certificates"]}
    assert outcomes == {
        "web-expired": ("renewed", "renewed", 2),
        "shop-expiring": ("renewed", "renewed", 2),
        "api-healthy": ("skipped", "not_due", 1),
        "portal-selfsigned": ("skipped", "not_managed", 1),
        "partner-retired": ("failed", "ca_denied", 1),
    }
    assert Path(summary["dashboard"]).read_text().count("<svg") >= 1
