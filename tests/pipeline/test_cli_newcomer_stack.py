"""A newcomer's first hour on the local stack, each command in its own process as a user runs it: a name Key Vault
cannot have records nothing, Ctrl-C in a renewal says what it may have left, a dry run counts what it would renew,
and ``--vault`` naming a vault certlc does not manage is a usage mistake everywhere."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from renewal.runtime import build_runtime
from tests.environment import without_certlc_settings
from tests.pipeline.helpers import alerts_for, audit, seed, unique

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]


def certlc_env(**settings: str) -> dict[str, str]:
    return without_certlc_settings() | {"PYTHONPATH": str(REPO)} | settings


def certlc(stack, cwd: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "certlc", "--settings", str(stack.settings_path), *args],
        cwd=cwd,
        env=certlc_env(**settings),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_renew_of_a_name_key_vault_cannot_have_records_nothing(stack, alerts, tmp_path):
    queue = unique("badname")  # a renewal queue of its own: its failed store holds only what this test caused
    audit_file = Path(stack.settings["CERTLC_AUDIT_FILE"])
    before = audit_file.read_bytes() if audit_file.exists() else b""
    result = certlc(stack, tmp_path, "renew", "bad name!", "--vault", "kv1", CERTLC_QUEUE_NAME=queue)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "certlc: 'bad name!' cannot be a Key Vault certificate name: 1-127 letters, digits and hyphens "
        "(`certlc status` lists the certificates)"
    ]
    assert build_runtime(stack.settings | {"CERTLC_QUEUE_NAME": queue}).failed.list() == []
    assert audit(stack, "bad name!") == [] and alerts_for(alerts, "bad name!") == []
    assert (audit_file.read_bytes() if audit_file.exists() else b"").startswith(before)


def test_a_dry_run_of_every_due_certificate_counts_what_it_would_renew(stack, tmp_path):
    names = [unique("dry-all") for _ in range(2)]
    for name in names:  # due by their own renew-before tag: no near-expiry event renews them meanwhile
        seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"})
    table = certlc(stack, tmp_path, "renew", "--all", "--dry-run", "--vault", "kv1")
    summary = table.stdout.strip().splitlines()[-1]
    assert summary.startswith("dry run: ") and "would renew" in summary and "skipped" not in summary, table.stdout

    listed = certlc(stack, tmp_path, "renew", "--all", "--dry-run", "--vault", "kv1", "-o", "json")
    body = json.loads(listed.stdout)
    would = [c["name"] for c in body["certificates"] if c["reason"] == "dry_run"]
    assert set(names) <= set(would), body
    assert body["counts"]["would_renew"] == len(would) and "skipped" not in body["counts"], body["counts"]


@pytest.mark.parametrize(
    "command", [["status"], ["targets"], ["renew", "--all"], ["renew", "web"], ["status", "web"]], ids=" ".join
)
def test_a_vault_not_in_certlc_vaults_is_a_usage_mistake(stack, tmp_path, command):
    result = certlc(stack, tmp_path, *command, "--vault", "kv9")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == ["certlc: vault 'kv9' is not in CERTLC_VAULTS (kv1, kv2)"]


def test_ctrl_c_in_a_renewal_says_what_it_may_have_left_and_exits_130(stack, tmp_path):
    """SIGINT while Key Vault is slow to create the new version: Key Vault has the pending operation, nobody merges
    it (``test_nothing_goes_quiet`` shows the next sweep taking it over); the command says so in one line."""
    name = unique("ctrl-c")
    seed(stack, name, days_left=200, lifetime_days=365)
    create = f"/certificates/{name}/create"
    stack.control.add_fault(latency_ms=4000, method="POST", path=create, count=1)
    try:
        renew = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "certlc",
                "--settings",
                str(stack.settings_path),
                "renew",
                name,
                "--vault",
                "kv1",
                "--force",
            ],
            cwd=tmp_path,
            env=certlc_env(CERTLC_QUEUE_NAME=unique("ctrl-c")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not any(f["path"] == create and f["hits"] for f in stack.control.call("GET", "faults")):
                assert renew.poll() is None and time.monotonic() < deadline, renew.communicate()
                time.sleep(0.05)
            renew.send_signal(signal.SIGINT)
            out, err = renew.communicate(timeout=60)
        finally:
            if renew.poll() is None:
                renew.kill()
    finally:
        stack.control.clear_faults()
    assert renew.returncode == 130, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"certlc: the renewal of kv1/{name} interrupted: "), lines[0]
    assert "pending operation" in lines[0] and "next sweep takes over" in lines[0]
    assert lines[0].endswith(f"see it with `certlc status {name} --vault kv1`"), lines[0]
