"""The targets' verdicts, as tables: what a target serves and why, what rollout does, the SERVED column, the
alerts, and when the replaced version may be retired."""

from __future__ import annotations

import datetime as dt

import pytest

from renewal.targets.decide import (
    TargetState,
    retirement_allowed,
    rollout_action,
    summary_of,
    target_alerts,
    target_state,
)
from renewal.targets.model import CertificateVersions, KnownVersion, Probe, Target

NOW = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
NEW = KnownVersion("v2", "BBBB", NOW + dt.timedelta(days=90), created=NOW - 2 * HOUR)
OLD = KnownVersion("v1", "AAAA", NOW + dt.timedelta(days=20))
VERSIONS = CertificateVersions("kv1", "web", NEW, OLD)
GRACE = HOUR


def target(pickup: str = "unknown", pinned: str | None = None, within: float | None = None, **kw) -> Target:
    hours = dt.timedelta(hours=within) if within is not None else None
    base = {"kind": "endpoint", "name": "www", "hosts": ("www.contoso.com",)}
    return Target(**(base | kw), pickup=pickup, pinned_version=pinned, pickup_within=hours)  # type: ignore[arg-type]


def saw(thumbprint: str | None, days_left: float = 90, error: str = "") -> Probe:
    return Probe("www.contoso.com", 443, NOW, thumbprint, NOW + dt.timedelta(days=days_left), "CN=www", error)


@pytest.mark.parametrize(
    ("the_target", "probes", "served", "reason"),
    [
        (target(), [saw("BBBB")], "current", "serves_current"),
        (target(), [saw("bbbb")], "current", "serves_current"),  # hex case does not matter
        (target(), [saw("AAAA", 20)], "previous", "serves_previous"),  # an endpoint never reloaded
        (target(), [saw("CCCC")], "other", "serves_other"),  # a certificate Key Vault does not hold
        (target(), [saw(None, error="connection refused")], "unreachable", "unreachable"),
        (target(), [], "not_probed", "not_probed"),
        (target(), [saw("BBBB"), saw("AAAA")], "previous", "serves_previous"),  # one host behind: not served
        (target(), [saw("BBBB"), saw(None, error="timed out")], "unreachable", "unreachable"),
        (target("pinned", "v1"), [saw("AAAA")], "previous", "pinned_to_previous"),
        (target("pinned", "v0"), [saw("CCCC")], "other", "pinned_elsewhere"),  # someone chose it: reported
        (target("pinned", "v2"), [saw("BBBB")], "current", "serves_current"),
        (target("versionless", within=4), [saw("AAAA")], "previous", "pickup_pending"),  # 2 h of its 4 h + 1 h
        (target("versionless", within=0.5), [saw("AAAA")], "previous", "not_picked_up"),  # past 0.5 h + 1 h grace
        (target("versionless", within=4), [saw("BBBB")], "current", "serves_current"),
    ],
)
def test_target_state(the_target, probes, served, reason) -> None:
    state = target_state(the_target, probes, VERSIONS, NOW, None, GRACE)
    assert (state.served, state.reason) == (served, reason), state.message
    assert state.since == NOW and state.message


@pytest.mark.parametrize(
    ("the_target", "mode", "action", "reason"),
    [
        (target("pinned", "v1"), "update", "update", "pinned_to_previous"),
        (target("pinned", "v1"), "report", "report", "pinned_to_previous"),
        (target("pinned", "v0"), "update", "report", "pinned_elsewhere"),  # never touched: someone chose it
        (target("pinned", "v2"), "update", "leave", "pinned_to_current"),
        (target("versionless", within=4), "update", "leave", "not_pinned"),
        (target(), "update", "leave", "not_pinned"),
    ],
)
def test_rollout_action(the_target, mode, action, reason) -> None:
    decision = rollout_action(the_target, VERSIONS, mode)
    assert (decision.action, decision.reason) == (action, reason)


def state_of(name: str, probes: list[Probe], **kw) -> TargetState:
    return target_state(target(name=name, **kw), probes, VERSIONS, NOW, NOW - dt.timedelta(days=3), GRACE)


def test_served_summary() -> None:
    good = [state_of("a", [saw("BBBB")]), state_of("b", [saw("BBBB")]), state_of("c", [saw("BBBB")])]
    assert summary_of(good) == "3/3"
    pinned = state_of("appgw-eu", [saw("AAAA")], pickup="pinned", pinned="v1")
    assert summary_of([good[0], pinned, good[1]]) == "2/3: appgw-eu pinned to the old version"
    assert summary_of([]) == ""


@pytest.mark.parametrize(
    ("state", "kinds"),
    [
        (state_of("a", [saw("BBBB")]), []),
        (state_of("a", [saw("AAAA", 20)]), ["not_served"]),
        (state_of("a", [saw("AAAA", 5)]), ["not_served", "served_expiring"]),
        (state_of("a", [saw("CCCC", 3)]), ["served_expiring"]),  # outside Key Vault, found by what it serves
        (state_of("a", [saw("AAAA")], pickup="versionless", within=4), []),  # still inside its interval
        (state_of("a", [saw("AAAA")], pickup="pinned", pinned="v1"), ["not_served"]),
        (state_of("a", [saw("CCCC")], pickup="pinned", pinned="v0"), []),  # reported, not alerted: chosen
        (state_of("a", [saw(None, error="refused")]), []),
    ],
)
def test_target_alerts(state: TargetState, kinds: list[str]) -> None:
    assert [a.kind for a in target_alerts(state, NOW, dt.timedelta(days=7))] == kinds


def test_an_alert_for_a_leaf_outside_key_vault_says_so() -> None:
    [alert] = target_alerts(state_of("lb", [saw("CCCC", 3)]), NOW, dt.timedelta(days=7))
    assert "Key Vault does not hold" in alert.message and "3 days" in alert.message


@pytest.mark.parametrize(
    ("states", "allowed", "reason"),
    [
        ([], False, "no_targets"),
        ([state_of("a", [saw("BBBB")]), state_of("b", [saw("AAAA")])], False, "still_served"),
        (
            [state_of("a", [saw("BBBB")]), state_of("b", [saw("CCCC")], pickup="pinned", pinned="v1")],
            False,
            "still_served",
        ),
        ([state_of("a", [saw("BBBB")]), state_of("b", [saw(None, error="x")])], False, "not_all_current"),
        ([state_of("a", [saw("BBBB")]), state_of("b", [saw("BBBB")])], True, "all_current"),
    ],
)
def test_retirement(states, allowed, reason) -> None:
    verdict = retirement_allowed(states, NOW, dt.timedelta(days=1))
    assert (verdict.allowed, verdict.reason) == (allowed, reason), verdict.message


def test_retirement_waits_until_every_target_has_settled() -> None:
    fresh = target_state(target(), [saw("BBBB")], VERSIONS, NOW, NOW - HOUR, GRACE)
    assert retirement_allowed([fresh], NOW, dt.timedelta(days=1)).reason == "settling"
