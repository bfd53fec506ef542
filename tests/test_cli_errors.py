"""User mistakes on the command line: one clear line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.environment import without_certlc_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["renew", "web", "--vault", "kv1"], {}, "CERTLC_VAULTS is not set"),
        (["--settings", "missing.json", "status"], {}, "missing.json does not exist"),
        (["sweep"], {"CERTLC_VAULTS": "bad/name"}, "not a valid Key Vault name"),
        (["failed", "list"], {"CERTLC_VAULTS": "kv1"}, "no queue connection"),
        (
            ["renew", "web", "--vault", "kv1"],
            {"CERTLC_VAULTS": "kv1", "CERTLC_MAX_ATTEMPTS": "many"},
            "CERTLC_MAX_ATTEMPTS",
        ),
        (
            ["sweep"],
            {
                "CERTLC_VAULTS": "kv1",
                "CERTLC_CLOCK_URL": "https://example.org/clock",
                "CertlcStorage": "UseDevelopmentStorage=true",
            },
            "not on loopback",
        ),
        (["ingest"], {"CERTLC_VAULTS": "kv1"}, "CERTLC_DCE_ENDPOINT"),
        (
            ["ingest"],
            {
                "CERTLC_VAULTS": "kv1",
                "CERTLC_DCE_ENDPOINT": "https://127.0.0.1:1",
                "CERTLC_DCR_IMMUTABLE_ID": "dcr-1",
                "CERTLC_EXPIRING_DAYS": "soon",
            },
            "CERTLC_EXPIRING_DAYS",
        ),
        (["failed", "retry"], {"CERTLC_VAULTS": "kv1", "CertlcStorage": "UseDevelopmentStorage=true"}, "--all"),
    ],
)
def test_mistakes_get_one_line_and_exit_2(tmp_path, args, env, message):
    clean = without_certlc_settings()
    result = subprocess.run(
        [sys.executable, "-m", "certlc", *args],
        cwd=tmp_path,
        env={**clean, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_help_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "certlc", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in (
        "demo",
        "status",
        "renew",
        "sweep",
        "ingest",
        "dashboard",
        "failed",
        "worker",
        "dev",
        "local",
        "emulator",
    ):
        assert f"    {command}" in result.stdout
