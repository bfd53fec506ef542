"""``certlc status`` output: the dashboard's grouped table in a terminal (same colours), or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from certlc.dashboard.view import LABELS, build_view, renewal_pending
from ingestion.schema import STATUS_EXPIRED, STATUS_EXPIRING, STATUS_OK, STATUSES

ANSI = {STATUS_EXPIRED: "\033[31m", STATUS_EXPIRING: "\033[33m", STATUS_OK: "\033[32m"}
RESET = "\033[0m"
COLUMNS = (
    ("KeyVault", "VAULT"),
    ("CertName", "NAME"),
    ("CertExpiration", "EXPIRY (UTC)"),
    ("DaysLeft", "DAYS"),
    ("RenewalPending", "RENEWAL"),
    ("CertRecipient", "RECIPIENT"),
    ("LastRenewalOutcome", "LAST RENEWAL"),
)


def _text(row: Mapping[str, Any], column: str) -> str:
    if column == "RenewalPending":  # the expiry and days shown are the last good version's
        return "pending" if renewal_pending(row) else ""
    value = row.get(column)
    if value is None:
        return ""
    if column == "CertExpiration":
        return str(value).replace("T", " ").removesuffix("Z")[:16]
    return str(value)


def render_table(rows: Iterable[Mapping[str, Any]], colour: bool) -> str:
    view = build_view(rows)
    members = [r for s in STATUSES for r in view.groups[s]]
    widths = {c: max([len(h)] + [len(_text(r, c)) for r in members]) for c, h in COLUMNS}
    paint = (lambda s, t: f"{ANSI[s]}{t}{RESET}") if colour else (lambda s, t: t)
    lines = [f"Snapshot {view.snapshot_time or '(none)'}: " + ", ".join(
        paint(s, f"{LABELS[s]} {n}") for s, n in view.counts.items()
    ) + (f"; renewal pending {view.renewals_pending}" if view.renewals_pending else "")]  # fmt: skip
    lines.append("  ".join(h.ljust(widths[c]) for c, h in COLUMNS).rstrip())
    for status in STATUSES:
        if not view.groups[status]:
            continue
        lines.append(paint(status, f"{LABELS[status]} ({len(view.groups[status])})"))
        for row in view.groups[status]:
            cells = "  ".join(_text(row, c).ljust(widths[c]) for c, _ in COLUMNS).rstrip()
            lines.append(paint(status, cells))
    return "\n".join(lines)


def render_json(rows: Iterable[Mapping[str, Any]], errors: Iterable[str] = ()) -> str:
    view = build_view(rows)
    members = [r for s in STATUSES for r in view.groups[s]]
    body = {
        "snapshot": view.snapshot_time,
        "counts": view.counts,
        "renewals_pending": view.renewals_pending,
        "certificates": members,
        "errors": list(errors),
    }
    return json.dumps(body, indent=2)
