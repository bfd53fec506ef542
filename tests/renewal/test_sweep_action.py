"""The sweep's decision chain, as a table: what it does with one certificate and whether it warns."""

from __future__ import annotations

import datetime as dt

import pytest

from renewal.decide import Verdict, WindowSettings
from renewal.keyvault import CertificateSnapshot, PendingOperation
from renewal.ledger import RenewalRecord
from renewal.sweep import SweepInput, sweep_action

NOW = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)
RENEW = Verdict("renew", "due", "due")
FAILED_BEFORE = Verdict("skip", "failed_before", "failed")
NOT_MANAGED = Verdict("skip", "not_managed", "Self")
IN_PROGRESS = PendingOperation("op-1", "inprogress", b"csr")


def cert(days_left: float = 20, tags: dict[str, str] | None = None, version: str = "v1") -> CertificateSnapshot:
    expires = NOW + dt.timedelta(days=days_left)
    return CertificateSnapshot(
        "kv1", "web", version, True, expires - dt.timedelta(days=90), expires, "Unknown", tags or {}, None, None
    )


def record(version: str = "v1", late_by: dt.timedelta = dt.timedelta(0)) -> RenewalRecord:
    return RenewalRecord(owner="other", state="pending", next_action_at=NOW - late_by, version=version)


WARNED_TODAY = {"certlc-warned": NOW.strftime("%Y-%m-%d")}
STALE = dt.timedelta(minutes=16)


@pytest.mark.parametrize(
    ("snapshot", "verdict", "found", "pending", "action", "reason", "warn"),
    [
        (cert(), RENEW, None, None, "enqueue", "due", False),  # queued: someone now renews it, no warning
        (cert(), RENEW, record(), IN_PROGRESS, "in_flight", "renewal other is pending", False),
        (cert(days_left=5), RENEW, record(), IN_PROGRESS, "in_flight", "renewal other is pending", True),  # stuck
        (cert(days_left=5, tags=WARNED_TODAY), RENEW, record(), None, "in_flight", "renewal other is pending", False),
        (cert(), RENEW, record(late_by=STALE), IN_PROGRESS, "take_over", "orphaned_pending_operation", False),
        (cert(), RENEW, None, IN_PROGRESS, "take_over", "orphaned_pending_operation", False),  # started by hand
        (cert(), RENEW, record(version="v0"), IN_PROGRESS, "take_over", "orphaned_pending_operation", False),
        (cert(), RENEW, record(late_by=STALE), None, "enqueue", "due", False),  # owner gone, nothing pending
        (cert(), RENEW, None, PendingOperation("op-1", "failed", None), "enqueue", "due", False),
        (cert(), FAILED_BEFORE, None, None, "leave", "failed_before", True),  # nobody will renew it
        (cert(tags=WARNED_TODAY), FAILED_BEFORE, None, None, "leave", "failed_before", False),  # once a day
        (cert(days_left=45), FAILED_BEFORE, None, None, "leave", "failed_before", False),  # not yet 30 days
        (cert(), NOT_MANAGED, None, None, "leave", "not_managed", False),
    ],
)
def test_sweep_action(snapshot, verdict, found, pending, action, reason, warn) -> None:
    decision = sweep_action(SweepInput(snapshot, verdict, found, pending, NOW, WindowSettings()))
    assert (decision.action, decision.reason, decision.warn) == (action, reason, warn)
