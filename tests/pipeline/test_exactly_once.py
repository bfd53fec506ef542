"""Exactly once across instances: one new version and one CA request per due certificate, whatever the
deliveries, with two processes on one queue (the stack's host and a ``certlc worker``), as Azure Functions
runs when it scales out or beside an on-premises worker."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from renewal.ca.local import LocalCA
from renewal.messages import RenewalRequest
from tests.pipeline.helpers import (
    alerts_for,
    audit,
    certlc_worker,
    client,
    drain_until,
    near_expiry_event,
    no_pending,
    seed,
    settle,
    unique,
    versions,
)

pytestmark = pytest.mark.azurite

DUE = {"certlc-renew-before-days": "450"}  # due now, yet far from Key Vault's own NearExpiry event


def deliver_events(stack: Any, events: list[dict[str, Any]]) -> None:
    """Deliver each event on its own (Event Grid's default: one event per delivery), all at once."""

    def post(event: dict[str, Any]) -> None:
        response = requests.post(
            stack.host.eventgrid_url("event"), json=[event], headers={"aeg-event-type": "Notification"}, timeout=30
        )
        assert response.status_code == 200, response.text

    threads = [threading.Thread(target=post, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def expiry_events(stack: Any, name: str, version: str, redeliveries: int = 1) -> list[dict[str, Any]]:
    """NearExpiry and Expired for one version, each delivered ``redeliveries`` times (same event id)."""
    near = near_expiry_event(stack, name, version)
    expired = near_expiry_event(stack, name, version) | {"eventType": "Microsoft.KeyVault.CertificateExpired"}
    return [near, expired] * redeliveries


def count(records: list[dict[str, Any]], event: str) -> int:
    return sum(record["event"] == event for record in records)


@pytest.fixture
def second_process(stack: Any, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """``certlc worker`` on the stack's queue, beside the stack's own host: two instances, one queue."""
    with certlc_worker(stack.settings_path, tmp_path / "worker.log") as process:
        yield process


def test_two_processes_and_every_delivery_twice_renew_each_certificate_once(stack: Any, second_process: Any) -> None:
    names = [unique("twice") for _ in range(10)]
    olds = {name: seed(stack, name, days_left=400, lifetime_days=500, tags=DUE) for name in names}
    settle(stack)
    events = [e for name in names for e in expiry_events(stack, name, olds[name].properties.version, redeliveries=2)]
    deliver_events(stack, events)
    drain_until(
        stack,
        lambda: all(len(versions(stack, name)) >= 2 and no_pending(stack, name) for name in names),
        names=tuple(names),
    )
    time.sleep(1)  # let the other process finish what it holds
    settle(stack)
    for name in names:
        records = audit(stack, name)
        assert len(versions(stack, name)) == 2, (name, [(r["event"], r.get("reason")) for r in records])
        assert count(records, "submitted") == 1, name  # one CA request per renewal
        assert count(records, "merged") == 1, name
        assert no_pending(stack, name)
    assert second_process.poll() is None  # the worker really was there, polling the same queue


def test_events_while_the_ca_has_not_decided_follow_the_one_request(stack: Any, second_process: Any) -> None:
    """A CA that answers Pending (manager approval): later events and redeliveries poll it, never resubmit."""
    name = unique("approval")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags=DUE | {"certlc-profile": "approval"})
    settle(stack)
    deliver_events(stack, expiry_events(stack, name, old.properties.version)[:1])
    drain_until(stack, lambda: count(audit(stack, name), "pending") >= 1)
    deliver_events(stack, expiry_events(stack, name, old.properties.version, redeliveries=3))  # 1 Expired, 5 more

    def in_flight_skips() -> int:
        return [r.get("reason") for r in audit(stack, name) if r["event"] == "skipped"].count("in_flight")

    # settle() only drains this process: the worker process may hold some of the six messages
    drain_until(stack, lambda: in_flight_skips() >= 6)
    records = audit(stack, name)
    trail = [(r["event"], r.get("reason"), r.get("correlation_id", "")[:8]) for r in records]
    assert count(records, "submitted") == 1, trail
    assert in_flight_skips() == 6, trail
    pending = next(r for r in records if r["event"] == "pending")
    LocalCA(Path(stack.settings["CERTLC_LOCAL_CA_DIR"])).approve(pending["ca_request_id"])
    drain_until(stack, lambda: len(versions(stack, name)) == 2 and no_pending(stack, name))
    settle(stack)
    records = audit(stack, name)
    trail = [(r["event"], r.get("reason"), r.get("correlation_id", "")[:8]) for r in records]
    assert (count(records, "submitted"), count(records, "merged"), len(versions(stack, name))) == (1, 1, 2), trail


def test_a_ca_answering_garbage_fails_once_with_an_alert_and_leaves_nothing_pending(stack: Any, alerts: Any, mocker):
    """Not a known error type: still one CA request, a permanent failure, an alert, a failed-store entry."""
    from renewal.ca.base import Issued
    from renewal.queue import FailedStore
    from renewal.runtime import build_runtime

    name = unique("garbage")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags=DUE)
    settle(stack)
    garbage = Issued(("-----BEGIN CERTIFICATE-----\nAAAA",))
    mocker.patch.object(LocalCA, "submit", lambda self, csr, profile, replaces=None: garbage)
    deliver_events(stack, expiry_events(stack, name, old.properties.version)[:1])
    drain_until(stack, lambda: count(audit(stack, name), "failed") >= 1)
    records = audit(stack, name)
    assert [r["reason"] for r in records if r["event"] == "failed"] == ["ca_bad_certificate"]
    assert count(records, "submitted") == 1
    assert len(versions(stack, name)) == 1 and no_pending(stack, name)
    assert any(a["kind"] == "renewal_failed" for a in alerts_for(alerts, name))
    failed: FailedStore = build_runtime(stack.settings).failed
    assert any(entry.name == name and entry.reason == "ca_bad_certificate" for entry in failed.list())


def test_a_renewal_given_up_withdraws_its_ca_request(stack: Any, alerts: Any) -> None:
    """Its Key Vault pending operation deleted by hand while the CA waits: a permanent failure, and the CA
    request is closed so no manager approves a certificate nobody will collect."""
    import json

    name = unique("abandoned")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags=DUE | {"certlc-profile": "approval"})
    settle(stack)
    deliver_events(stack, expiry_events(stack, name, old.properties.version)[:1])
    drain_until(stack, lambda: count(audit(stack, name), "pending") >= 1)
    request_id = next(r for r in audit(stack, name) if r["event"] == "pending")["ca_request_id"]
    client(stack).delete_certificate_operation(name)
    drain_until(stack, lambda: count(audit(stack, name), "failed") >= 1)
    records = audit(stack, name)
    assert [r["reason"] for r in records if r["event"] == "failed"] == ["pending_lost"]
    assert [r["ca_request_id"] for r in records if r["event"] == "withdrawn"] == [request_id]
    stored = json.loads((Path(stack.settings["CERTLC_LOCAL_CA_DIR"]) / "requests" / f"{request_id}.json").read_text())
    assert stored["state"] == "withdrawn" and "pending_lost" in stored["reason"]
    assert any(a["kind"] == "renewal_failed" for a in alerts_for(alerts, name))


def test_a_denied_version_is_asked_for_once_whatever_else_arrives(stack: Any, alerts: Any) -> None:
    """After a permanent failure, later events and redeliveries leave the version to its operator."""
    name = unique("denied")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags=DUE | {"certlc-profile": "retired-template"})
    settle(stack)
    deliver_events(stack, expiry_events(stack, name, old.properties.version)[:1])
    drain_until(stack, lambda: count(audit(stack, name), "failed") >= 1)
    deliver_events(stack, expiry_events(stack, name, old.properties.version, redeliveries=2))
    settle(stack)
    records = audit(stack, name)
    trail = [(r["event"], r.get("reason")) for r in records]
    assert (count(records, "submitted"), count(records, "failed")) == (1, 1), trail
    assert [r.get("reason") for r in records if r["event"] == "skipped"] == ["failed_before"] * 4, trail
    assert [a["kind"] for a in alerts_for(alerts, name)].count("renewal_failed") == 1


def test_a_renewal_delivered_again_after_its_merge_notifies_once(stack: Any, alerts: Any) -> None:
    """The message of a finished renewal comes back (its settlement failed: a queue outage, a crash after the
    notice): the renewal is recognised as done by its correlation id, and its notice is not sent a second time."""
    from tests.pipeline.helpers import deliver

    name = unique("notify-once")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags=DUE)
    settle(stack)
    body = RenewalRequest("kv1", name, "manual", version=old.properties.version).to_json()
    for _ in range(3):  # the first delivery, then two redeliveries of the same message
        deliver(stack, body)
    renewed = [a for a in alerts_for(alerts, name) if a["kind"] == "renewed"]
    assert len(renewed) == 1, renewed
    assert count(audit(stack, name), "merged") == 3 and len(versions(stack, name)) == 2
