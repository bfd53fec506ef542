"""How the sweep reads the one decision, as a table: what it does with one certificate and whether it tells
someone today; which certificates it looks at and what its request says started it (a canary's schedule, or the
sweep's own rule)."""

from __future__ import annotations

import datetime as dt

import pytest

from renewal.canary import CanarySettings
from renewal.decide import Reason, Verdict, WindowSettings, facts_of, plan
from renewal.keyvault import CertificateSnapshot, CertificateSummary
from renewal.sweep import sweep_action, sweep_trigger, worth_a_look

NOW = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)


def said(outcome: str, reason: Reason, tell: str = "nobody") -> Verdict:
    return Verdict(outcome, reason, str(reason), tell=tell)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verdict", "warned_today", "action", "warn"),
    [
        (said("renew", Reason.DUE), False, "enqueue", False),  # queued: someone now renews it, nobody told
        (said("renew", Reason.ARI_DUE), False, "enqueue", False),  # the ACME CA asked: queued
        (said("renew", Reason.CANARY_DUE), False, "enqueue", False),
        (said("renew", Reason.ORPHANED_PENDING_OPERATION), False, "take_over", False),
        # due, but certlc cannot renew it as it is: queued, so the workflow records the failure and alerts
        (said("fail", Reason.NO_PROFILE), False, "enqueue", False),
        (said("fail", Reason.TOO_MANY_TAGS), False, "enqueue", False),
        (said("wait", Reason.IN_FLIGHT), False, "in_flight", False),
        (said("wait", Reason.IN_FLIGHT, "escalate"), False, "in_flight", True),  # stuck this close to expiry
        (said("wait", Reason.IN_FLIGHT, "escalate"), True, "in_flight", False),  # once a day
        (said("skip", Reason.FAILED_BEFORE, "owners"), False, "leave", True),  # nobody will renew it
        (said("skip", Reason.FAILED_BEFORE, "owners"), True, "leave", False),
        (said("skip", Reason.UNCOVERED, "owners"), False, "leave", True),
        (said("skip", Reason.OPTED_OUT, "escalate"), False, "leave", True),
        (said("skip", Reason.UNCOVERED), False, "leave", False),  # not yet inside CERTLC_WARN_DAYS
        (said("skip", Reason.KEYVAULT_AUTO_RENEW), False, "leave", False),
        (said("skip", Reason.SCHEDULED), False, "leave", False),
    ],
)
def test_sweep_action(verdict: Verdict, warned_today: bool, action: str, warn: bool) -> None:
    decision = sweep_action(verdict, warned_today)
    assert (decision.action, decision.reason, decision.warn) == (action, str(verdict.reason), warn)


DAILY_CANARY = CanarySettings(frozenset({"kv1/web"}), dt.timedelta(days=1))
OPTED_OUT = {"certlc-renew": "false"}
EARLY = {"certlc-renew-before-days": "60"}
FAILED = {"certlc-last-outcome": f"failed ca_denied {NOW - dt.timedelta(days=1):%Y-%m-%d}"}
TOLD_TODAY = {"certlc-warned": f"{NOW:%Y-%m-%d}"}
TOLD_YESTERDAY = {"certlc-warned": f"{NOW - dt.timedelta(days=1):%Y-%m-%d}"}
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
        ("kv1", listed(days_left=10, age=80), CanarySettings(), True),  # inside its window
        ("kv1", listed(), DAILY_CANARY, True),  # a canary two days old, renewed daily
        ("KV1", listed(), DAILY_CANARY, True),  # vault names are case-insensitive
        ("kv2", listed(), DAILY_CANARY, False),  # the same name in another vault is not the canary
        ("kv1", listed(age=0.5), DAILY_CANARY, False),  # renewed half a day ago: not yet
        ("kv1", listed(age=1), DAILY_CANARY, True),  # exactly on its schedule
        ("kv1", listed(enabled=False), DAILY_CANARY, False),  # disabled: nothing renews it
        ("kv2", listed(tags=CANARY_TAG), CanarySettings(every=dt.timedelta(days=1)), True),  # the tag
        ("kv2", listed(tags=CANARY_TAG), CanarySettings(), False),  # the tag, every 7 days (the default)
        ("kv1", listed(days_left=30, age=335), CanarySettings(), True),  # inside the notice window: someone is told
        ("kv1", listed(days_left=31, age=335), CanarySettings(), False),
        # the listing's tags: opted out, only the notice window; told today, nothing more today
        ("kv1", listed(days_left=40, age=50, tags=EARLY), CanarySettings(), True),  # inside its own 60 days
        ("kv1", listed(days_left=40, age=50, tags=EARLY | OPTED_OUT), CanarySettings(), False),  # not certlc's
        ("kv1", listed(days_left=30, age=335, tags=OPTED_OUT), CanarySettings(), True),
        ("kv1", listed(days_left=20, age=345, tags=OPTED_OUT | TOLD_TODAY), CanarySettings(), False),
        ("kv1", listed(days_left=20, age=345, tags=OPTED_OUT | TOLD_YESTERDAY), CanarySettings(), True),
        ("kv1", listed(days_left=5, age=85, tags=FAILED | TOLD_TODAY), CanarySettings(), False),
        ("kv1", listed(days_left=5, age=85, tags=TOLD_TODAY), CanarySettings(), True),  # renewable again: read
        ("kv1", listed(tags=OPTED_OUT | TOLD_TODAY), DAILY_CANARY, True),  # a canary's schedule still counts
        # a compromise renewal left unfinished: read whatever its dates, so the sweep finishes it
        ("kv1", listed(tags={"certlc-compromised": "v0"}), CanarySettings(), True),
    ],
)
def test_the_sweep_looks_at_certificates_inside_their_window_and_canaries_on_schedule(
    vault, summary, canary, looked_at
) -> None:
    settings = WindowSettings(renew_before=dt.timedelta(days=10), lifetime_fraction=0)
    assert worth_a_look(vault, summary, NOW, settings, canary) is looked_at


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
        shown = plan(facts_of(snapshot, canary), NOW, WindowSettings(default_profile="server"))
        assert shown.next_renewal is not None and shown.reason.startswith("canary")
        assert (sweep_trigger("kv1", snapshot, NOW, canary) == "canary") is (shown.next_renewal <= NOW)
