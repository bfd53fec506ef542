"""The sweep's decision chain, as a table: what it does with one certificate and whether it warns; which
certificates it looks at and what its request says started it (a canary's schedule, or the sweep's own rule)."""

from __future__ import annotations

import datetime as dt

import pytest

from renewal.canary import CanarySettings
from renewal.decide import Verdict, WindowSettings
from renewal.keyvault import CertificateSnapshot, CertificateSummary, PendingOperation
from renewal.ledger import RenewalRecord
from renewal.outlook import facts_of, outlook
from renewal.sweep import SweepInput, inside_window, sweep_action, sweep_trigger

NOW = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)
RENEW = Verdict("renew", "due", "due")
ARI_EARLY = Verdict("renew", "ari_window", "early, inside the CA's renewal window (ARI)")
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
        (cert(days_left=80), ARI_EARLY, None, None, "enqueue", "ari_window", False),  # the ACME CA asked: queued
        (cert(days_left=80), ARI_EARLY, record(), IN_PROGRESS, "in_flight", "renewal other is pending", False),
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
        # due, but certlc cannot renew it as it is: queued, so the workflow records the failure and alerts
        (cert(), Verdict("fail", "no_profile", "no CA profile"), None, None, "enqueue", "no_profile", False),
        (cert(), Verdict("fail", "too_many_tags", "15 tags"), None, None, "enqueue", "too_many_tags", False),
    ],
)
def test_sweep_action(snapshot, verdict, found, pending, action, reason, warn) -> None:
    decision = sweep_action(SweepInput(snapshot, verdict, found, pending, NOW, WindowSettings()))
    assert (decision.action, decision.reason, decision.warn) == (action, reason, warn)


DAILY_CANARY = CanarySettings(frozenset({"kv1/web"}), dt.timedelta(days=1))
CANARY_TAG = {"certlc-canary": "true"}


def listed(
    days_left: float = 88, age: float = 2, tags: dict[str, str] | None = None, enabled: bool = True
) -> CertificateSummary:
    """A listing entry ``age`` days old: healthy by default (88 of 90 days left)."""
    expires = NOW + dt.timedelta(days=days_left)
    return CertificateSummary("web", "v1", enabled, NOW - dt.timedelta(days=age), expires, tags or {})


@pytest.mark.parametrize(
    ("vault", "summary", "canary", "looked_at"),
    [
        ("kv1", listed(), CanarySettings(), False),  # healthy, no canary: no GET
        ("kv1", listed(days_left=20), CanarySettings(), True),  # inside its window
        ("kv1", listed(), DAILY_CANARY, True),  # a canary two days old, renewed daily
        ("KV1", listed(), DAILY_CANARY, True),  # vault names are case-insensitive
        ("kv2", listed(), DAILY_CANARY, False),  # the same name in another vault is not the canary
        ("kv1", listed(age=0.5), DAILY_CANARY, False),  # renewed half a day ago: not yet
        ("kv1", listed(age=1), DAILY_CANARY, True),  # exactly on its schedule
        ("kv1", listed(enabled=False), DAILY_CANARY, False),  # disabled: nothing renews it
        ("kv2", listed(tags=CANARY_TAG), CanarySettings(every=dt.timedelta(days=1)), True),  # the tag
        ("kv2", listed(tags=CANARY_TAG), CanarySettings(), False),  # the tag, every 7 days (the default)
    ],
)
def test_the_sweep_looks_at_certificates_inside_their_window_and_canaries_on_schedule(
    vault, summary, canary, looked_at
) -> None:
    assert inside_window(vault, summary, NOW, WindowSettings(), canary) is looked_at


def healthy(age: float, tags: dict[str, str] | None = None) -> CertificateSnapshot:
    """A certificate read whole, ``age`` days into a 90-day lifetime."""
    not_before = NOW - dt.timedelta(days=age)
    return CertificateSnapshot(
        "kv1", "web", "v1", True, not_before, not_before + dt.timedelta(days=90), "Unknown", tags or {}, None, None
    )


@pytest.mark.parametrize(
    ("snapshot", "canary", "trigger"),
    [
        (healthy(age=2), DAILY_CANARY, "canary"),
        (healthy(age=2), CanarySettings(), "sweep"),  # not a canary
        (healthy(age=0.5), DAILY_CANARY, "sweep"),  # a canary not yet on its schedule (decide: not due)
        (healthy(age=70), CanarySettings(), "sweep"),  # due by the window
        (healthy(age=2, tags=CANARY_TAG), CanarySettings(every=dt.timedelta(days=1)), "canary"),
    ],
)
def test_the_sweep_request_says_canary_when_the_canary_schedule_started_it(snapshot, canary, trigger) -> None:
    assert sweep_trigger("kv1", snapshot, NOW, canary) == trigger


@pytest.mark.parametrize("hours", [23, 24, 25, 24 * 6.5, 24 * 7])
def test_the_sweep_renews_a_canary_on_the_date_the_outlook_shows(hours) -> None:
    """The status, the dashboard and the workbook show the canary's next renewal; the sweep acts on that date."""
    snapshot = healthy(age=hours / 24)
    for canary in (DAILY_CANARY, CanarySettings(frozenset({"kv1/web"}))):
        shown = outlook(facts_of(snapshot, canary), NOW, WindowSettings())
        assert shown.next_renewal is not None and shown.reason.startswith("canary")
        assert (sweep_trigger("kv1", snapshot, NOW, canary) == "canary") is (shown.next_renewal <= NOW)
