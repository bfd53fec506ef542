"""Nothing goes quiet, on the local stack through the real entry points: one decision per certificate that every
caller shows alike; a certificate nobody renews is announced daily; a due certificate certlc cannot renew alerts
from the sweep; an orphan left by an interrupted `certlc renew` is taken over by the next sweep."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from renewal.ledger import ledger_from_env
from tests.cli import REPO, run_certlc
from tests.pipeline.helpers import (
    HandClock,
    alerts_for,
    audit,
    client,
    drain_until,
    functions_clock,
    seed,
    settle,
    unique,
    versions,
)

pytestmark = pytest.mark.timeout(240)
RENEW_BEFORE = "certlc-renew-before-days"  # due 200 days out without an event (Key Vault's come at 30 days)
FAILED = "failed ca_denied 2026-01-01"


def certlc_json(stack: Any, *args: str) -> Any:
    done = run_certlc("--settings", str(stack.settings_path), *args, "-o", "json", timeout=180)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_status_the_snapshot_rows_the_sweep_and_renew_dry_run_give_one_answer(stack):
    """Every caller interprets the one decision: `certlc status NAME`, the status list (the snapshot rows the
    ingest uploads), `certlc renew --all --dry-run` (the sweep's decision, acted on in a dry run) agree for each."""
    kinds = {
        "due": {RENEW_BEFORE: "250"},
        "scheduled": {},
        "opted_out": {"certlc-renew": "false", RENEW_BEFORE: "250"},
        "failed_before": {"certlc-last-outcome": FAILED, RENEW_BEFORE: "250"},
        "too_many_tags": {f"team{n:02}": "x" for n in range(12)} | {RENEW_BEFORE: "250"},
    }
    names = {kind: unique(f"one-{kind.replace('_', '')}") for kind in kinds}
    for kind, tags in kinds.items():
        seed(stack, names[kind], days_left=200, lifetime_days=365, tags=tags)
    settle(stack)

    listed = {c["CertName"]: c for c in certlc_json(stack, "status", "--vault", "kv1")["certificates"]}
    dry = {c["name"]: c for c in certlc_json(stack, "renew", "--all", "--dry-run")["certificates"]}
    for kind, name in names.items():
        one = certlc_json(stack, "status", name, "--vault", "kv1")
        row = listed[name]
        assert (one["plan"], row["RenewalPlan"]) == (kind, kind), (one, row)
        assert one["note"] == row["RenewalNote"]
        if kind == "due":  # would be renewed: the dry run says so in the decision's own words
            assert dry[name]["status"] == "skipped" and dry[name]["reason"] == "dry_run", dry[name]
            assert row["RenewalNote"] in dry[name]["message"]
        elif kind == "too_many_tags":  # a renewal that would fail fails the dry run, for the same reason
            assert (dry[name]["status"], dry[name]["reason"]) == ("failed", kind), dry[name]
        elif kind in ("scheduled", "opted_out"):  # not inside a window that matters: the sweep does not even read it
            assert name not in dry  # (opted out: only the notice window does, and 200 days are left)
        else:
            assert dry[name]["reason"] == kind, dry[name]
    assert all(len(versions(stack, name)) == 1 for name in names.values())  # the dry run changed nothing


def test_a_certificate_nobody_renews_gets_one_notice_a_day_from_30_days_until_a_new_version_exists(stack, alerts):
    """The seeds' flow for certificates whose keys their clients hold: no tool renews them, so their owners hear
    about it daily from CERTLC_WARN_DAYS (30), in the seeds' words, and no longer once a new version exists."""
    name = unique("client-held")

    def notices() -> list[dict[str, Any]]:
        return [a for a in alerts_for(alerts, name) if a["kind"] == "expiring"]

    def sweep_twice() -> None:
        for _ in range(2):
            stack.host.trigger_timer("sweep")
            settle(stack)

    with functions_clock(HandClock(stack.now())) as clock:
        seed(stack, name, days_left=31, lifetime_days=365, tags={"certlc-renew": "false"})
        settle(stack)
        sweep_twice()
        assert notices() == []  # 31 days left: not yet
        clock.advance(dt.timedelta(days=1, hours=1))
        sweep_twice()
        [notice] = notices()  # one a day, however often the sweep runs
        assert notice["summary"] == f"The certificate for {name} in kv1 will expire within the next 29 days"
        assert "certlc-renew=false" in notice["why"]
        clock.advance(dt.timedelta(days=1))
        sweep_twice()
        assert len(notices()) == 2
        seed(stack, name, days_left=365, lifetime_days=365, tags={"certlc-renew": "false"})  # its owner renewed it
        clock.advance(dt.timedelta(days=1))
        sweep_twice()
        assert len(notices()) == 2
    assert not [r for r in audit(stack, name) if r["event"] == "renewal_initiated"]  # certlc never touched it


def test_a_due_certificate_with_no_ca_profile_whose_event_was_lost_gets_an_alert_from_the_sweep(stack, alerts):
    """No CERTLC_CA_PROFILE and no tag: certlc cannot renew it. The sweep queues it like any due certificate and
    the renewal fails with its alert, as the lost event's would have; `certlc status` said so beforehand."""
    name = unique("no-profile")
    seed(stack, name, days_left=200, lifetime_days=365, tags={RENEW_BEFORE: "250"})
    settle(stack)
    with functions_clock(HandClock(stack.now()), CERTLC_CA_PROFILE=""):
        stack.host.trigger_timer("sweep")
        drain_until(stack, lambda: any(r["event"] == "failed" for r in audit(stack, name)), names=(name,))
    assert [a["reason_code"] for a in alerts_for(alerts, name) if a["kind"] == "renewal_failed"] == ["no_profile"]
    assert len(versions(stack, name)) == 1


def test_an_orphan_left_by_an_interrupted_certlc_renew_is_taken_over_by_the_next_sweep(stack, tmp_path):
    """Ctrl-C while Key Vault creates the new version: the pending operation is made, nobody merges it. The next
    sweep takes it over, whether or not the certificate is due, and renews it from that operation's CSR."""
    name = unique("interrupted")
    seed(stack, name, days_left=200, lifetime_days=365)  # not due
    settle(stack)
    create = f"/certificates/{name}/create"
    stack.control.add_fault(latency_ms=4000, method="POST", path=create, count=1)
    try:
        log = tmp_path / "renew.log"
        env = {**os.environ, "PYTHONPATH": str(REPO), "CERTLC_QUEUE_NAME": unique("interrupted")}
        command = ["renew", name, "--vault", "kv1", "--force"]
        with log.open("wb") as sink:
            renew = subprocess.Popen(
                [sys.executable, "-m", "certlc", "--settings", str(stack.settings_path), *command],
                cwd=tmp_path,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + 60
            while not any(f["path"] == create and f["hits"] for f in stack.control.call("GET", "faults")):
                assert renew.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            renew.send_signal(signal.SIGINT)  # Key Vault has the create and answers in a few seconds
            assert renew.wait(timeout=60) == 130, log.read_text()
        finally:
            if renew.poll() is None:
                renew.kill()
    finally:
        stack.control.clear_faults()
    kv = client(stack)
    deadline = time.monotonic() + 30
    while kv.get_certificate_operation(name).status != "inProgress":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    record = ledger_from_env(os.environ).peek("kv1", name)
    assert record is not None and record.intent == "create_pending", record
    assert len(versions(stack, name)) == 1

    stale = stack.now() + dt.timedelta(minutes=20)  # its owner is late for its next step: gone
    with functions_clock(HandClock(stale)):
        stack.host.trigger_timer("sweep")
        drain_until(stack, lambda: len(versions(stack, name)) == 2, names=(name,))
    events = [r["event"] for r in audit(stack, name)]
    assert "taken_over" in events, events
    assert [r["orphan"] for r in audit(stack, name) if r["event"] == "csr_reused"] == [True]
