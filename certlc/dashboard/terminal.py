"""``certlc status`` output: the dashboard's grouped table in a terminal (same colours), or JSON.

A row whose last renewal failed is red whatever its expiry group; who renews each certificate and when comes
from the row's outlook columns (``renewal.outlook``), so one certlc leaves alone never shows a renewal date."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from certlc.dashboard.view import (
    LABELS,
    StatusView,
    build_view,
    is_failed,
    is_uncovered,
    next_renewal,
    readable_time,
    renewal_pending,
    renewed_by,
)
from ingestion.schema import STATUS_EXPIRED, STATUS_EXPIRING, STATUS_OK, STATUSES

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
