"""Renewals and their numbers, from the renewal history (``CertlcRenewals_CL`` rows, ``ingestion.history``).

One renewal is the records sharing a correlation id, its steps folded under it. The numbers are the ones the
workbook's History tab computes in KQL (``infra/workbook.json``, items ``history-metrics``, ``history-failures``,
``history-interventions``), with the same definitions, so ``certlc status --summary``, the dashboard and the
workbook agree:

- outcome: ``renewed`` (a merged record), ``failed`` (a failed, denied or rejected record and no merge),
  ``operator`` (only operator actions: ``certlc failed retry`` and the like), ``deployment`` (only a sync round's
  or the target check's steps: written, reloaded, verified, rolled back, a reference moved, a version retired),
  ``skipped`` (only skips and notices), else ``in_progress``;
- success rate: renewed / (renewed + failed), in percent; none while nothing finished;
- lead time: per renewed renewal, days from its first merge to the replaced version's expiry (``OldExpiresOn``
  on its merged records; unknown when none carries it); average and shortest;
- trigger to merged: per renewed renewal, minutes from its trigger (the earliest ``TriggeredAt``, else its first
  record) to its first merge; average and longest;
- trigger to served: per renewed renewal whose certificate has targets, minutes from its trigger to its last
  ``served`` record (the target check's: every target of a prober serves the new version); average and longest;
- failures by cause: per failed renewal, the reason of its last failure record (its event when it has none);
- manual interventions: operator-action records (one per certificate acted on), by action.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from certlc.dashboard.view import parse_time
from renewal.audit import AuditEvent

FAILURE_EVENTS = frozenset({AuditEvent.FAILED, AuditEvent.DENIED, AuditEvent.REJECTED})
IDLE_EVENTS = frozenset({AuditEvent.SKIPPED, AuditEvent.NOTIFIED})  # steps that renew nothing
# where a certificate is deployed, not renewed: certlc sync's rounds, and the target check's moves and retirements
DEPLOYMENT_EVENTS = frozenset(
    {
        AuditEvent.WRITTEN,
        AuditEvent.RELOADED,
        AuditEvent.VERIFIED,
        AuditEvent.ROLLED_BACK,
        AuditEvent.ROLLOUT_UPDATED,
        AuditEvent.RETIRED,
    }
)
RENEWED, FAILED, OPERATOR, SKIPPED, IN_PROGRESS = "renewed", "failed", "operator", "skipped", "in_progress"
DEPLOYMENT = "deployment"


@dataclass(frozen=True)
class Renewal:
    """One correlation id's records, oldest first, and what they add up to."""

    correlation_id: str
    vault: str
    name: str
    trigger: str
    outcome: str
    reason: str  # the failure's cause, the skip's reason, or the operator's action(s)
    started: datetime | None
    ended: datetime | None
    triggered_at: datetime | None  # the earliest TriggeredAt, else the first record
    merged_at: datetime | None
    served_at: datetime | None  # the last `served` record: every target (of every prober) serves the new version
    old_expires_on: datetime | None
    ca_request_id: str
    actions: tuple[str, ...]  # operator actions folded into it (renew --force, ...)
    steps: tuple[Mapping[str, Any], ...] = field(repr=False)

    @property
    def duration_seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return (self.ended - self.started).total_seconds()

    @property
    def lead_days(self) -> float | None:
        """Days the replaced version had left when this renewal merged."""
        if self.merged_at is None or self.old_expires_on is None:
            return None
        return (self.old_expires_on - self.merged_at).total_seconds() / 86400

    @property
    def trigger_to_merged_minutes(self) -> float | None:
        if self.merged_at is None or self.triggered_at is None:
            return None
        return (self.merged_at - self.triggered_at).total_seconds() / 60

    @property
    def trigger_to_served_minutes(self) -> float | None:
        """From the trigger to the new version served by every known target (``renewal.targets``)."""
        if self.served_at is None or self.triggered_at is None or self.merged_at is None:
            return None
        return (self.served_at - self.triggered_at).total_seconds() / 60


@dataclass(frozen=True)
class Summary:
    """The renewal metrics over a window of the history (``since``: None for all of it)."""

    since: datetime | None
    renewals: int  # operator-only groups aside
    renewed: int
    failed: int
    in_progress: int
    skipped: int
    success_rate: float | None  # percent, one decimal
    lead_days_avg: float | None
    lead_days_min: float | None
    trigger_to_merged_minutes_avg: float | None
    trigger_to_merged_minutes_max: float | None
    trigger_to_served_minutes_avg: float | None
    trigger_to_served_minutes_max: float | None
    failures_by_cause: dict[str, int]  # most first
    interventions: dict[str, int]  # by action, most first

    @property
    def interventions_total(self) -> int:
        return sum(self.interventions.values())


def within(rows: Iterable[Mapping[str, Any]], since: datetime | None) -> list[Mapping[str, Any]]:
    """The rows after ``since`` (as the workbook's ``TimeGenerated > ago(30d)``); a row without a time only when
    there is no window."""
    if since is None:
        return list(rows)
    return [r for r in rows if (when := parse_time(r.get("TimeGenerated"))) is not None and when > since]


def group_renewals(rows: Iterable[Mapping[str, Any]]) -> list[Renewal]:
    """One ``Renewal`` per correlation id, newest start first; each one's steps oldest first."""
    groups: dict[str, list[tuple[float, int, Mapping[str, Any]]]] = {}
    for index, row in enumerate(rows):
        when = parse_time(row.get("TimeGenerated"))
        key = (when.timestamp() if when else float("-inf"), index, row)
        groups.setdefault(str(row.get("CorrelationId") or ""), []).append(key)
    renewals = [_renewal(cid, [row for *_, row in sorted(group, key=lambda k: k[:2])]) for cid, group in groups.items()]
    return sorted(renewals, key=lambda r: r.started.timestamp() if r.started else float("-inf"), reverse=True)


def _renewal(correlation_id: str, steps: list[Mapping[str, Any]]) -> Renewal:
    events = [str(s.get("Event") or "") for s in steps]
    times = [t for s in steps if (t := parse_time(s.get("TimeGenerated"))) is not None]
    merged = [s for s in steps if s.get("Event") == AuditEvent.MERGED]
    failures = [s for s in steps if s.get("Event") in FAILURE_EVENTS]
    own = [s for s in steps if s.get("Event") != AuditEvent.OPERATOR_ACTION]
    actions = tuple(str(s.get("Action") or "") for s in steps if s.get("Event") == AuditEvent.OPERATOR_ACTION)
    if merged:
        outcome, reason = RENEWED, ""
    elif failures:
        outcome, reason = FAILED, str(failures[-1].get("Reason") or failures[-1].get("Event"))
    elif not own:
        outcome, reason = OPERATOR, ", ".join(dict.fromkeys(actions))
    elif any(e in DEPLOYMENT_EVENTS for e in events) and all(
        e in DEPLOYMENT_EVENTS | IDLE_EVENTS | {AuditEvent.OPERATOR_ACTION} for e in events
    ):
        outcome, reason = DEPLOYMENT, ""
    elif all(e in IDLE_EVENTS or e == AuditEvent.OPERATOR_ACTION for e in events):
        skips = [s for s in own if s.get("Event") == AuditEvent.SKIPPED]
        outcome, reason = SKIPPED, str(skips[-1].get("Reason") or "") if skips else ""
    else:
        outcome, reason = IN_PROGRESS, ""
    triggered = [t for s in steps if (t := parse_time(s.get("TriggeredAt"))) is not None]
    expiries = [t for s in merged if (t := parse_time(s.get("OldExpiresOn"))) is not None]
    merged_times = [t for s in merged if (t := parse_time(s.get("TimeGenerated"))) is not None]
    served = [t for s in steps if s.get("Event") == AuditEvent.SERVED and (t := parse_time(s.get("TimeGenerated")))]
    first = steps[0]
    return Renewal(
        correlation_id=correlation_id,
        vault=str(first.get("KeyVault") or ""),
        name=str(first.get("CertName") or ""),
        trigger=next((str(s["Trigger"]) for s in own if s.get("Trigger")), str(first.get("Trigger") or "")),
        outcome=outcome,
        reason=reason,
        started=min(times, default=None),
        ended=max(times, default=None),
        triggered_at=min(triggered, default=None) or min(times, default=None),
        merged_at=min(merged_times, default=None),
        served_at=max(served, default=None),
        old_expires_on=max(expiries, default=None),
        ca_request_id=next((str(s["CaRequestId"]) for s in reversed(steps) if s.get("CaRequestId")), ""),
        actions=actions,
        steps=tuple(steps),
    )


def summarize(rows: Iterable[Mapping[str, Any]], since: datetime | None = None) -> Summary:
    """The metrics of the history rows after ``since``: the rows are windowed first, then grouped, as in KQL."""
    chosen = within(rows, since)
    groups = group_renewals(chosen)
    renewals = [g for g in groups if g.outcome != OPERATOR]
    outcomes = Counter(g.outcome for g in renewals)
    finished = outcomes[RENEWED] + outcomes[FAILED]
    leads = [d for g in renewals if (d := g.lead_days) is not None]
    waits = [m for g in renewals if (m := g.trigger_to_merged_minutes) is not None]
    rollouts = [m for g in renewals if (m := g.trigger_to_served_minutes) is not None]
    causes = Counter(g.reason for g in renewals if g.outcome == FAILED)
    actions = Counter(str(r.get("Action") or "") for r in chosen if r.get("Event") == AuditEvent.OPERATOR_ACTION)
    return Summary(
        since=since,
        renewals=len(renewals),
        renewed=outcomes[RENEWED],
        failed=outcomes[FAILED],
        in_progress=outcomes[IN_PROGRESS],
        skipped=outcomes[SKIPPED],
        success_rate=round(100 * outcomes[RENEWED] / finished, 1) if finished else None,
        lead_days_avg=_rounded(sum(leads) / len(leads)) if leads else None,
        lead_days_min=_rounded(min(leads)) if leads else None,
        trigger_to_merged_minutes_avg=_rounded(sum(waits) / len(waits)) if waits else None,
        trigger_to_merged_minutes_max=_rounded(max(waits)) if waits else None,
        trigger_to_served_minutes_avg=_rounded(sum(rollouts) / len(rollouts)) if rollouts else None,
        trigger_to_served_minutes_max=_rounded(max(rollouts)) if rollouts else None,
        failures_by_cause=_most_first(causes),
        interventions=_most_first(actions),
    )


def _rounded(value: float) -> float:
    return round(value, 1)


def _most_first(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
