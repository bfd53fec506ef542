"""The pure verdicts about a certificate's targets, each with a reason, in the shape of ``renewal.decide``.

``target_state``: what a target serves compared with Key Vault's versions, and why (a reference pinned to the
replaced version, a versionless one not picked up yet, a leaf Key Vault does not know, nothing reachable).
``rollout_action``: what ``CERTLC_ROLLOUT`` does with a reference (move one pinned to the replaced version under
``update``; report it under ``report``; never touch one pinned to some other version: someone chose it).
``served_summary``: the SERVED column ("3/3", "2/3: appgw-eu pinned to the old version"). ``target_alerts``: a
target still serving the replaced version after its pickup interval and the grace, and a served leaf close to
expiry whether Key Vault knows it or not. ``retirement_allowed``: whether the replaced version may be disabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from renewal.targets.model import CertificateVersions, Probe, Target

Served = Literal["current", "previous", "other", "unreachable", "not_probed"]
RolloutMode = Literal["report", "update"]


class TargetReason(StrEnum):
    SERVES_CURRENT = "serves_current"
    PINNED_TO_PREVIOUS = "pinned_to_previous"  # a reference to the replaced version: never moves by itself
    PINNED_ELSEWHERE = "pinned_elsewhere"  # a reference to some other version: someone chose it
    PICKUP_PENDING = "pickup_pending"  # versionless, still serving the replaced version, inside its interval
    NOT_PICKED_UP = "not_picked_up"  # still serving the replaced version past its interval and the grace
    SERVES_PREVIOUS = "serves_previous"  # a declared endpoint still serving the replaced version (not reloaded)
    SERVES_OTHER = "serves_other"  # a leaf that is no version Key Vault holds as current or replaced
    UNREACHABLE = "unreachable"
    NOT_PROBED = "not_probed"  # probed by another worker (CERTLC_PROBER), or not at all yet


@dataclass(frozen=True)
class TargetState:
    target: Target
    served: Served
    reason: TargetReason
    message: str
    since: datetime | None = None  # when the target started serving what it serves now (as far as certlc saw)
    thumbprint: str | None = None
    not_after: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.reason == TargetReason.SERVES_CURRENT


def served_by(probes: Sequence[Probe], versions: CertificateVersions) -> tuple[Served, Probe | None]:
    """What the target's hosts serve, the worst host first: nothing reachable, something unknown, the replaced
    version, then the current one (a target serves the current version only when every host does)."""
    if not probes:
        return "not_probed", None
    order: list[Served] = ["unreachable", "other", "previous", "current"]
    worst: tuple[int, Probe] | None = None
    for probe in probes:
        seen = _leaf_is(probe, versions)
        rank = order.index(seen)
        if worst is None or rank < worst[0]:
            worst = (rank, probe)
    assert worst is not None
    return order[worst[0]], worst[1]


def target_state(
    target: Target,
    probes: Sequence[Probe],
    versions: CertificateVersions,
    now: datetime,
    since: datetime | None,
    grace: timedelta,
) -> TargetState:
    """``since``: when the target was first seen serving what it serves now (the store's memory), or None."""
    served, probe = served_by(probes, versions)
    thumbprint, not_after = (probe.thumbprint, probe.not_after) if probe else (None, None)

    def state(reason: TargetReason, message: str) -> TargetState:
        return TargetState(target, served, reason, message, since or now, thumbprint, not_after)

    pinned = target.pickup == "pinned" and target.pinned_version
    if pinned and target.pinned_version != versions.current.version:
        if versions.previous is not None and target.pinned_version == versions.previous.version:
            return state(TargetReason.PINNED_TO_PREVIOUS, f"{target.name} is pinned to the replaced version")
        return state(
            TargetReason.PINNED_ELSEWHERE, f"{target.name} is pinned to version {target.pinned_version}, left as chosen"
        )
    if served == "current":
        return state(TargetReason.SERVES_CURRENT, f"{target.name} serves the current version")
    if served == "unreachable":
        error = probe.error if probe else "no answer"
        return state(TargetReason.UNREACHABLE, f"{target.name} could not be probed: {error}")
    if served == "not_probed":
        who = f"worker {target.prober}" if target.prober else "nobody yet"
        return state(TargetReason.NOT_PROBED, f"{target.name} is probed by {who}")
    if served == "other":
        return state(TargetReason.SERVES_OTHER, f"{target.name} serves a certificate Key Vault does not hold")
    # the replaced version
    if target.pickup == "versionless" and target.pickup_within is not None:
        created = versions.current.created
        due = (created or now) + target.pickup_within + grace
        if now < due:
            return state(
                TargetReason.PICKUP_PENDING, f"{target.name} picks the new version up by {due:%Y-%m-%d %H:%M}Z"
            )
        return state(TargetReason.NOT_PICKED_UP, f"{target.name} still serves the replaced version past its interval")
    return state(TargetReason.SERVES_PREVIOUS, f"{target.name} still serves the replaced version")


RolloutAction = Literal["update", "report", "leave"]


@dataclass(frozen=True)
class RolloutDecision:
    action: RolloutAction
    reason: str
    message: str


def rollout_action(target: Target, versions: CertificateVersions, mode: RolloutMode) -> RolloutDecision:
    """Only a reference pinned to the replaced version moves, and only under ``update``."""
    if target.pickup != "pinned" or not target.pinned_version:
        return RolloutDecision("leave", "not_pinned", f"{target.name} follows the newest version by itself")
    if target.pinned_version == versions.current.version:
        return RolloutDecision("leave", "pinned_to_current", f"{target.name} already names the current version")
    if versions.previous is None or target.pinned_version != versions.previous.version:
        return RolloutDecision(
            "report", "pinned_elsewhere", f"{target.name} is pinned to {target.pinned_version}: someone chose it"
        )
    if mode == "update":
        return RolloutDecision("update", "pinned_to_previous", f"{target.name} is moved to the current version")
    return RolloutDecision(
        "report", "pinned_to_previous", f"{target.name} names the replaced version; CERTLC_ROLLOUT=update moves it"
    )


def served_summary(seen: Sequence[tuple[str, str, str | None]]) -> str:
    """The SERVED column from each target's (name, reason, pinned version): how many serve the current version,
    and the first that does not, in a few words. The same for the states of one check and for what several
    probers (the app, on-premises workers) saw, put together."""
    if not seen:
        return ""
    good = sum(1 for _, reason, _ in seen if reason == TargetReason.SERVES_CURRENT)
    summary = f"{good}/{len(seen)}"
    first = next((item for item in seen if item[1] != TargetReason.SERVES_CURRENT), None)
    return f"{summary}: {_short(*first)}" if first else summary


def summary_of(states: Sequence[TargetState]) -> str:
    return served_summary([(s.target.name, str(s.reason), s.target.pinned_version) for s in states])


def _short(name: str, reason: str, pinned_version: str | None) -> str:
    words = {
        TargetReason.PINNED_TO_PREVIOUS: "pinned to the old version",
        TargetReason.PINNED_ELSEWHERE: f"pinned to version {pinned_version}",
        TargetReason.PICKUP_PENDING: "not picked up yet",
        TargetReason.NOT_PICKED_UP: "not picked up past its interval",
        TargetReason.SERVES_PREVIOUS: "serves the old version",
        TargetReason.SERVES_OTHER: "serves a certificate outside Key Vault",
        TargetReason.UNREACHABLE: "unreachable",
        TargetReason.NOT_PROBED: "not probed",
    }
    return f"{name} {words.get(reason, reason)}"


AlertKind = Literal["not_served", "served_expiring"]


@dataclass(frozen=True)
class TargetAlert:
    kind: AlertKind
    target: Target
    message: str


def target_alerts(state: TargetState, now: datetime, escalate_within: timedelta) -> list[TargetAlert]:
    """What someone must hear about this target: still serving the replaced version where it will not move by
    itself (pinned to it, or versionless past its interval and the grace, or an endpoint not reloaded), and a
    served leaf that expires within ``escalate_within``, whichever certificate it is."""
    found: list[TargetAlert] = []
    if state.reason in (
        TargetReason.PINNED_TO_PREVIOUS,
        TargetReason.NOT_PICKED_UP,
        TargetReason.SERVES_PREVIOUS,
    ):
        found.append(TargetAlert("not_served", state.target, state.message))
    if state.not_after is not None and state.not_after - now <= escalate_within:
        days = max(0, (state.not_after - now).days)
        outside = " (a certificate Key Vault does not hold)" if state.served == "other" else ""
        found.append(
            TargetAlert(
                "served_expiring",
                state.target,
                f"{state.target.name} serves a certificate{outside} expiring in {days} days",
            )
        )
    return found


@dataclass(frozen=True)
class Retirement:
    allowed: bool
    reason: str
    message: str


def retirement_allowed(states: Sequence[TargetState], now: datetime, settle_for: timedelta) -> Retirement:
    """The replaced version may be disabled once every known target has served the current one for ``settle_for``;
    never while any target serves the replaced one, and never with no target known (nothing proves it unused)."""
    if not states:
        return Retirement(False, "no_targets", "no target is known: nothing shows the replaced version is unused")
    old = [s for s in states if s.served == "previous" or s.reason == TargetReason.PINNED_TO_PREVIOUS]
    if old:
        return Retirement(False, "still_served", f"{old[0].target.name} still serves or names the replaced version")
    waiting = [s for s in states if not s.ok]
    if waiting:
        return Retirement(False, "not_all_current", waiting[0].message)
    recent = [s for s in states if s.since is None or now - s.since < settle_for]
    if recent:
        return Retirement(
            False, "settling", f"{recent[0].target.name} serves the current version for less than {settle_for}"
        )
    return Retirement(True, "all_current", "every known target has served the current version long enough")


def _leaf_is(probe: Probe, versions: CertificateVersions) -> Served:
    if not probe.reached:
        return "unreachable"
    thumbprint = (probe.thumbprint or "").upper()
    if thumbprint == versions.current.thumbprint.upper():
        return "current"
    if versions.previous is not None and thumbprint == versions.previous.thumbprint.upper():
        return "previous"
    return "other"
