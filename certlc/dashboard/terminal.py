"""``certlc status`` output: the dashboard's grouped table in a terminal (same colours), or JSON.

A row whose last renewal failed is red whatever its expiry group; who renews each certificate and when comes
from the row's outlook columns (``renewal.outlook``), so one certlc leaves alone never shows a renewal date."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from certlc.dashboard.view import LABELS, build_view, is_failed, is_uncovered, renewal_pending
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
RENEWED_BY = {"keyvault": "Key Vault", "opted_out": "opted out", "nobody": "NOBODY"}  # others as they are
DUE_NOW = ("due", "canary_due")  # outlook reasons whose date has passed: the next sweep renews it


def _text(row: Mapping[str, Any], column: str) -> str:
    if column == "RenewalPending":  # the expiry and days shown are the last good version's
        return "pending" if renewal_pending(row) else ""
    value = row.get(column)
    if value is None:
        return ""
    if column == "RenewedBy":
        return RENEWED_BY.get(str(value), str(value))
    if column == "NextRenewal":  # only certlc's renewals have a date
        if row.get("RenewedBy") != "certlc":
            return ""
        return "due now" if row.get("RenewalPlan") in DUE_NOW else str(value)[:10]
    if column == "CertExpiration":
        return str(value).replace("T", " ").removesuffix("Z")[:16]
    return str(value)


def render_table(rows: Iterable[Mapping[str, Any]], colour: bool) -> str:
    view = build_view(rows)
    members = [r for s in STATUSES for r in view.groups[s]]
    widths = {c: max([len(h)] + [len(_text(r, c)) for r in members]) for c, h in COLUMNS}
    paint = (lambda s, t: f"{ANSI[s]}{t}{RESET}") if colour else (lambda s, t: t)
    failed, uncovered = _count(members, is_failed), _count(members, is_uncovered)
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
            cells = "  ".join(_text(row, c).ljust(widths[c]) for c, _ in COLUMNS).rstrip()
            lines.append(paint(STATUS_EXPIRED if is_failed(row) else status, cells))
    return "\n".join(lines)


def _count(rows: Iterable[Mapping[str, Any]], predicate: Callable[[Mapping[str, Any]], bool]) -> int:
    return sum(1 for row in rows if predicate(row))


def render_json(rows: Iterable[Mapping[str, Any]], errors: Iterable[str] = ()) -> str:
    view = build_view(rows)
    members = [r for s in STATUSES for r in view.groups[s]]
    body = {
        "snapshot": view.snapshot_time,
        "counts": view.counts,
        "renewals_pending": view.renewals_pending,
        "failed": _count(members, is_failed),
        "uncovered": _count(members, is_uncovered),
        "certificates": members,
        "errors": list(errors),
    }
    return json.dumps(body, indent=2)
