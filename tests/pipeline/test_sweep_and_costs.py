"""The sweep, the cost of a renewal in Key Vault calls, and `certlc renew` on the local stack."""

from __future__ import annotations

import datetime as dt

from certlc.cli import main as certlc
from renewal.messages import RenewalRequest
from tests.pipeline.helpers import (
    HandClock,
    alerts_for,
    audit,
    client,
    deliver,
    drain_until,
    functions_clock,
    merged,
    seed,
    settle,
    unique,
    versions,
)


def _calls_for(stack, name: str) -> list[str]:
    return [
        f"{r['method']} {r['path'].replace(name, 'NAME')}"
        for r in stack.control.requests()
        if name in r["path"] and r["status"] != 401
    ]


def test_a_plain_renewal_costs_four_key_vault_calls(stack):
    """Read, create, read the renewed version again before the merge (the operator's tags and intent), merge."""
    name = unique("cost")
    version = seed(
        stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"}
    ).properties.version
    settle(stack)
    stack.control.clear_requests()
    deliver(stack, RenewalRequest("kv1", name, "sweep").to_json())
    assert merged(stack, name) == 1
    calls = _calls_for(stack, name)
    assert calls == [
        "GET /certificates/NAME/",
        "POST /certificates/NAME/create",
        f"GET /certificates/NAME/{version}",
        "POST /certificates/NAME/pending/merge",
    ], calls


def test_the_sweep_renews_what_no_event_announced(stack):
    """Due by the one-third rule (60 of 300 days left) while Key Vault only raises events at 30 days."""
    name = unique("swept")
    seed(stack, name, days_left=60, lifetime_days=300)
    settle(stack)
    assert len(versions(stack, name)) == 1, "no event should have fired 60 days out"
    stack.host.trigger_timer("sweep")
    settle(stack)
    assert len(versions(stack, name)) == 2
    initiated = [r for r in audit(stack, name) if r["event"] == "renewal_initiated"]
    assert [r["trigger"] for r in initiated] == ["sweep"]


def test_expiry_warnings_go_out_once_a_day_for_a_certificate_that_cannot_be_renewed(stack, alerts):
    """The functions read a clock the test holds, so the two sweeps of one day fall on one day whatever the hour."""
    name = unique("warned")
    with functions_clock(HandClock(stack.now())) as clock:
        seed(stack, name, days_left=20, tags={"certlc-profile": "retired-template"})
        settle(stack)
        for _ in range(2):
            stack.host.trigger_timer("sweep")
            settle(stack)
        warnings = [a for a in alerts_for(alerts, name) if a["kind"] == "expiring"]
        assert len(warnings) == 1
        assert (
            warnings[0]["summary"]
            == f"The certificate for {name} in kv1 will expire within the next {warnings[0]['days_left']} days"
        )
        assert 18 <= warnings[0]["days_left"] <= 20
        failed = [r for r in audit(stack, name) if r["event"] == "failed"]
        assert len(failed) == 1, "the sweep must not re-queue a permanently failed version"
        assert client(stack).get_certificate(name).properties.tags["certlc-warned"] == clock.now.strftime("%Y-%m-%d")

        clock.advance(dt.timedelta(days=1))
        stack.host.trigger_timer("sweep")
        settle(stack)
        warnings = [a for a in alerts_for(alerts, name) if a["kind"] == "expiring"]
        assert len(warnings) == 2, "the next day warns again"
        assert len([r for r in audit(stack, name) if r["event"] == "failed"]) == 1


def test_certlc_renew_dry_run_then_force(stack, capsys):
    name = unique("manual")
    seed(stack, name, days_left=200, lifetime_days=365)
    settle(stack)
    settings = str(stack.settings_path)
    assert certlc(["--settings", settings, "renew", name, "--vault", "kv1"]) == 0
    assert "skipped (scheduled)" in capsys.readouterr().out
    assert certlc(["--settings", settings, "renew", name, "--vault", "kv1", "--force", "--dry-run"]) == 0
    assert "would renew" in capsys.readouterr().out
    assert len(versions(stack, name)) == 1
    assert certlc(["--settings", settings, "renew", name, "--vault", "kv1", "--force"]) == 0
    assert "renewed" in capsys.readouterr().out
    assert len(versions(stack, name)) == 2
    initiated = [r for r in audit(stack, name) if r["event"] == "renewal_initiated"]
    assert [r["trigger"] for r in initiated] == ["manual"]  # an operator's renewal is audited as one


def test_certlc_renew_refuses_a_vault_that_is_not_allowed(stack, capsys):
    """A usage mistake (exit 2), said once, before anything is read or recorded."""
    assert certlc(["--settings", str(stack.settings_path), "renew", "anything", "--vault", "evil"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("'evil' is not in CERTLC_VAULTS") == 1


def test_inside_seven_days_the_daily_warning_is_an_escalation(stack, alerts):
    name = unique("urgent")
    seed(stack, name, days_left=5, tags={"certlc-profile": "retired-template"})
    settle(stack)
    stack.host.trigger_timer("sweep")
    settle(stack)
    kinds = [a["kind"] for a in alerts_for(alerts, name)]
    assert kinds.count("escalation") == 2, kinds  # one with the failure, one from the sweep
    assert "expiring" not in kinds


def test_no_token_key_or_secret_reaches_the_logs(stack, caplog):
    """A full renewal with every logger at DEBUG: the bearer token, the storage key and the webhook stay out."""
    import logging
    import re

    name = unique("logs")
    seed(stack, name, days_left=400, lifetime_days=500)
    caplog.set_level(logging.DEBUG)
    deliver(stack, RenewalRequest("kv1", name, "manual", force=True).to_json())
    assert merged(stack, name) == 1
    account_key = re.search(r"AccountKey=([^;]+)", stack.settings["CertlcStorage"]).group(1)
    webhook_path = stack.settings["CERTLC_WEBHOOK_URLS"].split("=", 1)[1].split("/", 3)[3]
    for secret in (stack.keyvault.token, account_key, webhook_path):
        assert secret not in caplog.text
    assert "BEGIN PRIVATE KEY" not in caplog.text and "BEGIN EC PRIVATE KEY" not in caplog.text


def test_the_sweep_takes_over_a_pending_operation_nobody_owns_and_warns_nobody(stack, alerts):
    """A pending operation started by hand (or left by a renewal that died) is renewed from its own CSR."""
    name = unique("orphan")
    seed(stack, name, days_left=20, tags={"certlc-renew-before-days": "25"})
    settle(stack)
    assert len(versions(stack, name)) == 2  # the NearExpiry event renewed it once
    kv = client(stack)
    kv.update_certificate_properties(name, tags={"certlc-renew-before-days": "400"})  # due again
    kv.begin_create_certificate(name, kv.get_certificate_policy(name))  # someone's "New version", never merged
    stack.host.trigger_timer("sweep")
    settle(stack)
    assert len(versions(stack, name)) == 3
    reused = [r for r in audit(stack, name) if r["event"] == "csr_reused"]
    assert [r["orphan"] for r in reused] == [True]
    assert not [a for a in alerts_for(alerts, name) if a["kind"] in ("expiring", "escalation")]


def test_a_due_certificate_certlc_cannot_renew_as_it_is_gets_an_alert_from_the_sweep(stack, alerts):
    """Its Event Grid event was lost (here: never sent, 400 days before expiry): the sweep queues it like any due
    certificate, and the renewal ends as a permanent failure with its alert, as the event's would have."""
    name = unique("swept-fail")
    tags = {f"team{n:02}": "x" for n in range(13)} | {"certlc-renew-before-days": "450"}
    seed(stack, name, days_left=400, lifetime_days=500, tags=tags)
    settle(stack)
    assert not audit(stack, name)  # nothing announced it
    stack.host.trigger_timer("sweep")
    drain_until(stack, lambda: any(r["event"] == "failed" for r in audit(stack, name)), names=(name,))
    assert [r["reason"] for r in audit(stack, name) if r["event"] == "failed"] == ["too_many_tags"]
    assert [a["reason_code"] for a in alerts_for(alerts, name) if a["kind"] == "renewal_failed"] == ["too_many_tags"]
    assert len(versions(stack, name)) == 1
