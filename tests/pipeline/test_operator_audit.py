"""Operator actions on the local stack are audited: `certlc failed retry/remove/purge` and `certlc renew --force`/
`--compromise`, run as a user runs them (a child process), leave a record naming the action, the certificate, the
user and the host, in the audit file and in the renewal history the Logs emulator received; a dry run leaves none,
and no record carries a secret of the settings."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingestion.history import STREAM_DEFAULT as HISTORY_STREAM
from renewal.audit import is_secret_key
from renewal.messages import RenewalRequest
from renewal.runtime import build_runtime
from tests.environment import without_certlc_settings
from tests.pipeline.helpers import audit, seed, unique

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]


def certlc(stack: Any, *args: str, queue: str | None = None) -> subprocess.CompletedProcess:
    """The command in a child process with the stack's settings file (and a renewal queue of the test's own)."""
    env = without_certlc_settings() | ({"CERTLC_QUEUE_NAME": queue} if queue else {})
    return subprocess.run(
        [sys.executable, "-m", "certlc", "--settings", str(stack.settings_path), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def operator_rows(stack: Any, name: str) -> list[dict[str, Any]]:
    return [r for r in stack.logs.rows(HISTORY_STREAM) if r["CertName"] == name and r["Event"] == "operator_action"]


def secrets(settings: dict[str, str]) -> list[str]:
    """Every secret the settings hold: secret-named values and the storage account key."""
    found = [v for k, v in settings.items() if is_secret_key(k) and len(v) >= 8]
    found += [
        part.split("=", 1)[1] for v in settings.values() for part in v.split(";") if part.startswith("AccountKey=")
    ]
    return found


def assert_no_secret(stack: Any, *texts: str) -> None:
    hidden = secrets(stack.settings)
    assert hidden  # the check means something: the stack has a storage key and a token
    leaked = [s for s in hidden for text in texts if s in text]
    assert leaked == []


@pytest.fixture
def own_queue(stack):
    """A renewal queue of this test's own: its failed store holds only what the test puts there."""
    from azure.core.exceptions import ResourceNotFoundError

    from renewal.clients import queue_client

    queue = unique("op-q")
    env = stack.settings | {"CERTLC_QUEUE_NAME": queue}
    yield queue, build_runtime(env)
    for name in (queue, f"{queue}-failed", f"{queue}-poison"):
        with contextlib.suppress(ResourceNotFoundError):  # the poison queue only exists once something went there
            queue_client(env, name).delete_queue()


def failed_entries(stack: Any, queue: str) -> dict[str, dict[str, Any]]:
    listed = certlc(stack, "failed", "list", "-o", "json", queue=queue)
    assert listed.returncode == 0, listed.stderr
    return {e["name"]: e for e in json.loads(listed.stdout)}


def test_failed_retry_remove_and_purge_are_audited_with_who_and_where(stack, own_queue):
    queue, runtime = own_queue
    now = dt.datetime.now(dt.UTC)
    retried, removed, purged = unique("op-retry"), unique("op-remove"), unique("op-purge")
    for name in (retried, removed, purged):
        runtime.failed.add(RenewalRequest(vault="kv1", name=name, trigger="sweep"), "", "ca_denied", "no", now)
    entries = failed_entries(stack, queue)

    done = certlc(stack, "failed", "retry", entries[retried]["id"], queue=queue)
    assert done.returncode == 0 and f"re-driven: kv1/{retried}" in done.stdout, done.stderr
    done = certlc(stack, "failed", "remove", entries[removed]["id"], queue=queue)
    assert done.returncode == 0, done.stderr
    assert certlc(stack, "failed", "purge", queue=queue).returncode == 2  # refused without --yes: nothing done
    assert operator_rows(stack, purged) == []
    done = certlc(stack, "failed", "purge", "--yes", queue=queue)
    assert done.returncode == 0, done.stderr

    who = (getpass.getuser(), socket.gethostname())
    for name, action in ((retried, "failed_retry"), (removed, "failed_remove"), (purged, "failed_purge")):
        (row,) = operator_rows(stack, name)
        assert (row["Action"], row["KeyVault"], row["Detail"]) == (action, "kv1", "failed entry: ca_denied")
        assert (row["OperatorUser"], row["OperatorHost"]) == who
        (record,) = [r for r in audit(stack, name) if r["event"] == "operator_action"]  # the audit file too
        assert (record["action"], record["entry_id"], record["user"]) == (action, entries[name]["id"], who[0])
    rows = [json.dumps(r) for name in (retried, removed, purged) for r in operator_rows(stack, name)]
    assert_no_secret(stack, *rows, *(json.dumps(r) for n in (retried, removed, purged) for r in audit(stack, n)))


def test_renew_force_and_compromise_are_audited_as_the_renewals_first_step(stack):
    forced, compromised, dry = unique("op-force"), unique("op-compromise"), unique("op-dry")
    for name in (forced, compromised, dry):
        seed(stack, name, days_left=400, lifetime_days=500)  # not due: only the operator's word renews it

    looked = certlc(stack, "renew", dry, "--vault", "kv1", "--force", "--dry-run")
    assert looked.returncode == 0, looked.stderr
    assert operator_rows(stack, dry) == [] and audit(stack, dry) == []  # a dry run audits nothing

    for name, flag, action, trigger in (
        (forced, "--force", "renew_force", "manual"),
        (compromised, "--compromise", "renew_compromise", "compromise"),
    ):
        done = certlc(stack, "renew", name, "--vault", "kv1", flag)
        assert done.returncode == 0 and f"kv1/{name}: renewed" in done.stdout, (done.stdout, done.stderr)
        # in time order, as Log Analytics shows them: the history is uploaded in batches, each process its own
        rows = sorted(
            (r for r in stack.logs.rows(HISTORY_STREAM) if r["CertName"] == name), key=lambda r: r["TimeGenerated"]
        )
        events = [r["Event"] for r in rows]
        assert events[0] == "operator_action" and "merged" in events
        first = rows[0]
        assert (first["Action"], first["Trigger"]) == (action, trigger)
        assert (first["OperatorUser"], first["OperatorHost"]) == (getpass.getuser(), socket.gethostname())
        assert {r["CorrelationId"] for r in rows} == {first["CorrelationId"]}  # folded under the renewal
        assert_no_secret(stack, *(json.dumps(r) for r in rows))
