"""``certlc status`` output: the dashboard's grouped table in a terminal (same colours), or JSON; with
``--summary``, the renewal metrics and one line per renewal (``certlc.dashboard.metrics``).

A row whose last renewal failed is red whatever its expiry group; who renews each certificate and when comes
from the row's decision columns (``renewal.decide.plan``), so one certlc leaves alone never shows a renewal date;
SERVED is what its targets serve (``renewal.targets``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from certlc.dashboard.metrics import Renewal, Summary
from certlc.dashboard.view import (
    LABELS,
    StatusView,
    build_view,
    is_failed,
    is_uncovered,
    next_renewal,
    readable_duration,
    readable_time,
    renewal_pending,
    renewed_by,
)
from ingestion.schema import STATUS_EXPIRED, STATUS_EXPIRING, STATUS_OK, STATUSES
from renewal.clock import iso_utc

ANSI = {STATUS_EXPIRED: "\033[31m", STATUS_EXPIRING: "\033[33m", STATUS_OK: "\033[32m"}
RESET = "\033[0m"
COLUMNS = (
    ("KeyVault", "VAULT"),
    ("CertName", "NAME"),
    ("CertExpiration", "EXPIRY (UTC)"),
    ("DaysLeft", "DAYS"),
    ("RenewedBy", "RENEWED BY"),
    ("NextRenewal", "NEXT RENEWAL"),
    ("LastRenewalOutcome", "LAST OUTCOME"),
    ("RenewalPending", "RENEWAL"),
    ("Served", "SERVED"),
    ("CertRecipient", "RECIPIENT"),
)


def _text(row: Mapping[str, Any], column: str, view: StatusView) -> str:
    """A cell, in the dashboard's words (``certlc.dashboard.view``)."""
    if column == "RenewalPending":  # the expiry and days shown are the last good version's
        return "pending" if renewal_pending(row) else ""
    if column == "RenewedBy":  # nobody renews it: loud even without colour
        return renewed_by(row).upper() if is_uncovered(row) else renewed_by(row)
    if column == "NextRenewal":  # only certlc's renewals have a date
        return next_renewal(row, view.snapshot_time)
    value = row.get(column)
    if value is None:
        return ""
    if column == "CertExpiration":
        return readable_time(value).removesuffix(" UTC")
    return str(value)


def render_table(rows: Iterable[Mapping[str, Any]], colour: bool) -> str:
    view = build_view(rows)
    members = view.members
    widths = {c: max([len(h)] + [len(_text(r, c, view)) for r in members]) for c, h in COLUMNS}
    paint = (lambda s, t: f"{ANSI[s]}{t}{RESET}") if colour else (lambda s, t: t)
    failed, uncovered = view.failed, view.uncovered
    summary = [paint(s, f"{LABELS[s]} {n}") for s, n in view.counts.items()]
    if view.renewals_pending:
        summary.append(f"renewal pending {view.renewals_pending}")
    summary.append(paint(STATUS_EXPIRED, f"Failed {failed}") if failed else "Failed 0")
    summary.append(f"nobody renews {uncovered}")
    lines = [f"Snapshot {view.snapshot_time or '(none)'}: " + ", ".join(summary)]
    lines.append("  ".join(h.ljust(widths[c]) for c, h in COLUMNS).rstrip())
    for status in STATUSES:
        if not view.groups[status]:
            continue
        lines.append(paint(status, f"{LABELS[status]} ({len(view.groups[status])})"))
        for row in view.groups[status]:
            cells = "  ".join(_text(row, c, view).ljust(widths[c]) for c, _ in COLUMNS).rstrip()
            lines.append(paint(STATUS_EXPIRED if is_failed(row) else status, cells))
    return "\n".join(lines)


def render_json(rows: Iterable[Mapping[str, Any]], errors: Iterable[str] = ()) -> str:
    view = build_view(rows)
    body = {
        "snapshot": view.snapshot_time,
        "counts": view.counts,
        "renewals_pending": view.renewals_pending,
        "failed": view.failed,
        "uncovered": view.uncovered,
        "certificates": view.members,
        "errors": list(errors),
    }
    return json.dumps(body, indent=2)


SUMMARY_HEAD = ("STARTED (UTC)", "VAULT", "NAME", "TRIGGER", "OUTCOME", "REASON", "DURATION", "CA REQUEST",
                "CORRELATION")  # fmt: skip


def _number(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:g} {unit}"


def render_summary(summary: Summary, renewals: Iterable[Renewal], *, steps: bool = False) -> str:
    """``certlc status --summary``: the metrics, then one line per renewal, newest first (``steps``: each one's
    audit events under it)."""
    s = summary
    window = f"since {readable_time(s.since.isoformat())}" if s.since else "in the whole history"
    causes = ", ".join(f"{c} {n}" for c, n in s.failures_by_cause.items()) or "none"
    actions = ", ".join(f"{a} {n}" for a, n in s.interventions.items())
    lines = [
        f"Renewals {window}: {s.renewals} (renewed {s.renewed}, failed {s.failed}, in progress {s.in_progress}, "
        f"skipped {s.skipped})",
        f"Success rate:          {_number(s.success_rate, '%')}",
        f"Lead time:             average {_number(s.lead_days_avg, 'days')}, "
        f"shortest {_number(s.lead_days_min, 'days')}",
        f"Trigger to merged:     average {_number(s.trigger_to_merged_minutes_avg, 'min')}, "
        f"longest {_number(s.trigger_to_merged_minutes_max, 'min')}",
        f"Trigger to served:     average {_number(s.trigger_to_served_minutes_avg, 'min')}, "
        f"longest {_number(s.trigger_to_served_minutes_max, 'min')} (every target serves the new version)",
        f"Failures by cause:     {causes}",
        f"Manual interventions:  {s.interventions_total}{f' ({actions})' if actions else ''}",
    ]
    table = [list(SUMMARY_HEAD)]
    folded: list[list[str]] = []
    for r in renewals:
        started = readable_time(r.started.isoformat()).removesuffix(" UTC") if r.started else ""
        table.append([started, r.vault, r.name, r.trigger, r.outcome, r.reason,
                      readable_duration(r.duration_seconds), r.ca_request_id, r.correlation_id])  # fmt: skip
        folded.append([_step_line(step) for step in r.steps] if steps else [])
    if len(table) == 1:
        return "\n".join([*lines, "", "No renewals recorded."])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines.append("")
    for index, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        lines += [f"    {step}" for step in (folded[index - 1] if index else [])]
    return "\n".join(lines)


def _step_line(step: Mapping[str, Any]) -> str:
    """One audit event of a renewal: time, event, and what it says."""
    said = " ".join(
        f"{key.lower()}={step[key]}"
        for key in ("Attempt", "Reason", "Detail", "Ca", "OldVersion", "NewVersion", "Action", "OperatorUser",
                    "OperatorHost")
        if step.get(key) not in (None, "")
    )  # fmt: skip
    return f"{readable_time(step.get('TimeGenerated')).removesuffix(' UTC')}  {step.get('Event', '')}  {said}".rstrip()


def render_summary_json(summary: Summary, renewals: Iterable[Renewal]) -> str:
    """The metrics and every renewal with its steps, times in ISO 8601 UTC."""
    body = {
        "summary": asdict(summary) | {"interventions_total": summary.interventions_total},
        "renewals": [
            asdict(r)
            | {
                "duration_seconds": r.duration_seconds,
                "lead_days": r.lead_days,
                "trigger_to_merged_minutes": r.trigger_to_merged_minutes,
                "trigger_to_served_minutes": r.trigger_to_served_minutes,
            }
            for r in renewals
        ],
    }
    return json.dumps(body, indent=2, default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
