"""ARI (RFC 9773) on the local stack: an ACME CA that asks for an early renewal gets one.

pebble 2.4 has no renewalInfo, so the ACME CA is the test front (tests/fixtures/acme_ari.py) in front of a real
pebble: the front suggests a window, pebble issues. The sweep runs as the sweep function does, given the workflow's
CA adapters so that it can ask the ACME CA.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from renewal import handlers
from renewal.sweep import SweepReport
from tests.fixtures.acme_ari import AriFront, ari_id, start_front
from tests.pipeline.helpers import (
    PREVIOUS_CA,
    alerts_for,
    audit,
    client,
    drain_until,
    seed,
    settle,
    unique,
    versions,
)

pytestmark = pytest.mark.timeout(180)

EXPLANATION = "https://ca.certlc.test/incidents/mass-revocation"


@pytest.fixture(scope="module")
def front(pebble, tmp_path_factory) -> Iterator[AriFront]:
    running = start_front(pebble, tmp_path_factory.mktemp("ari-front"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def acme_app(stack, front, tmp_path_factory) -> Iterator[Any]:
    """The functions with the ACME adapter pointed at the front (app settings are environment variables)."""
    folder = tmp_path_factory.mktemp("acme-app")
    settings = {
        "CERTLC_ACME_DIRECTORY": front.directory_url,
        "CERTLC_ACME_CA_BUNDLE": str(front.ca_bundle),
        "CERTLC_ACME_ACCOUNT_KEY": str(folder / "account.pem"),
        "CERTLC_ACME_HTTP01_WEBROOT": str(folder / "www"),  # pebble accepts every answer: nothing serves it
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    handlers.reset_runtime()
    yield handlers.runtime()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    handlers.reset_runtime()


def run_sweep(rt: Any) -> SweepReport:
    """The sweep function's own handler on ``rt`` (the runtime it builds): it returns its report."""
    assert handlers.runtime() is rt
    return handlers.on_sweep_timer()


def seed_acme(stack: Any, name: str) -> x509.Certificate:
    """An ACME-managed certificate with 80 of 90 days left: not due by the normal window (30 days)."""
    seed(
        stack,
        name,
        days_left=80,
        lifetime_days=90,
        sans=(f"{name}.certlc.test",),
        tags={"certlc-ca": "acme", "certlc-profile": "server"},
        extra=(x509.AuthorityKeyIdentifier.from_issuer_public_key(PREVIOUS_CA.certificate.public_key()),),
    )
    settle(stack)
    return x509.load_der_x509_certificate(bytes(client(stack).get_certificate(name).cer))


def test_the_sweep_renews_early_when_the_acme_ca_asks_and_the_order_names_what_it_replaces(
    stack, front, acme_app, alerts
) -> None:
    name = unique("ari")
    old = seed_acme(stack, name)
    now = stack.now()
    old_id = front.suggest(old, now - dt.timedelta(days=2), now - dt.timedelta(days=1), EXPLANATION)

    report = run_sweep(acme_app)
    settle(stack)

    assert f"kv1/{name}" in report.enqueued, report
    assert len(versions(stack, name)) == 2
    orders = [o for o in front.new_orders if o["identifiers"][0]["value"] == f"{name}.certlc.test"]
    assert [o.get("replaces") for o in orders] == [old_id]
    initiated = [r for r in audit(stack, name) if r["event"] == "renewal_initiated"]
    assert [(r["trigger"], r["ca"]) for r in initiated] == [("sweep", "acme")]
    renewed = [a for a in alerts_for(alerts, name) if a.get("kind") == "renewed"]
    assert len(renewed) == 1


def test_the_renewed_notice_carries_the_cas_explanation(stack, front, acme_app, alerts) -> None:
    name = unique("ari-why")
    old = seed_acme(stack, name)
    now = stack.now()
    front.suggest(old, now - dt.timedelta(days=2), now - dt.timedelta(days=1), EXPLANATION)

    report = run_sweep(acme_app)
    assert f"kv1/{name}" in report.enqueued, report

    def renewed() -> list[dict[str, Any]]:
        return [a for a in alerts_for(alerts, name) if a.get("kind") == "renewed"]

    drain_until(stack, renewed, names=(name,))  # a renewal that met the lock comes back after its delay
    assert [a.get("explanation_url") for a in renewed()] == [EXPLANATION]


def test_a_window_to_come_and_a_failing_renewal_info_leave_the_normal_window(stack, front, acme_app) -> None:
    later, failing = unique("ari-later"), unique("ari-down")
    now = stack.now()
    front.suggest(seed_acme(stack, later), now + dt.timedelta(days=20), now + dt.timedelta(days=21))
    down = seed_acme(stack, failing)
    front.suggest(down, now - dt.timedelta(days=2), now - dt.timedelta(days=1), EXPLANATION)
    front.fail_with = 500
    try:
        report = run_sweep(acme_app)
        settle(stack)
    finally:
        front.fail_with = None

    assert report.skipped.get(f"kv1/{later}") == "scheduled"
    assert report.skipped.get(f"kv1/{failing}") == "scheduled"  # no answer: the normal window, which says not yet
    assert ari_id(down) in front.renewal_info_requests
    assert (len(versions(stack, later)), len(versions(stack, failing))) == (1, 1)


def test_status_shows_the_date_the_cas_window_sets(stack, front, acme_app, capsys) -> None:
    """certlc status NAME asks the CA as the sweep does, so the date it shows is the one the sweep acts on."""
    import json

    from certlc.cli import main as certlc

    name = unique("ari-status")
    now = stack.now()
    start, end = now + dt.timedelta(days=10), now + dt.timedelta(days=11)
    front.suggest(seed_acme(stack, name), start, end)
    capsys.readouterr()

    assert certlc(["--settings", str(stack.settings_path), "status", name, "--vault", "kv1", "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["plan"] == "ari_scheduled", shown
    assert start <= dt.datetime.fromisoformat(shown["next_renewal"].replace("Z", "+00:00")) <= end


def test_the_status_snapshot_shows_the_date_the_cas_window_sets(stack, front, acme_app) -> None:
    """The dashboard's rows ask the CA as the sweep does; a certificate the CA says nothing about keeps the normal
    window's date, and a second snapshot is answered from the cache (no new renewalInfo request)."""
    from ingestion.run import take_snapshot

    asked, quiet = unique("ari-row"), unique("ari-row-quiet")
    now = stack.now()
    start, end = now + dt.timedelta(days=10), now + dt.timedelta(days=11)
    front.suggest(seed_acme(stack, asked), start, end)
    seed_acme(stack, quiet)  # the front answers 404 for it

    rows = {r["CertName"]: r for r in take_snapshot(os.environ, now=now).rows}
    requests_made = len(front.renewal_info_requests)
    again = {r["CertName"]: r for r in take_snapshot(os.environ, now=now).rows}

    assert rows[asked]["RenewalPlan"] == "ari_scheduled", rows[asked]
    assert start <= dt.datetime.fromisoformat(rows[asked]["NextRenewal"].replace("Z", "+00:00")) <= end
    assert "ARI" in rows[asked]["RenewalNote"]
    assert rows[quiet]["RenewalPlan"] != "ari_scheduled" and rows[quiet]["NextRenewal"] > rows[asked]["NextRenewal"]
    assert again[asked]["NextRenewal"] == rows[asked]["NextRenewal"]
    assert len(front.renewal_info_requests) == requests_made
