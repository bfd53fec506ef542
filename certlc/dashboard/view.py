"""What the workbook shows, computed from status rows: latest snapshot, counts and groups by status, who renews
each certificate and when, and the renewal history newest first.

The HTML page and the terminal table both render this one view. Rows from before a column existed still render:
a missing column reads as unknown, never as a default that would claim something.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingestion.schema import STATUS_EXPIRED, STATUS_EXPIRING, STATUS_OK, STATUSES
from renewal.audit import AuditEvent

ALL_VAULTS = "*"
LABELS = {STATUS_EXPIRED: "Expired", STATUS_EXPIRING: "Expiring soon", STATUS_OK: "Not expired"}
COLOURS = {STATUS_EXPIRED: "#d13438", STATUS_EXPIRING: "#f2b705", STATUS_OK: "#107c10"}
RENEWED_BY = {"certlc": "certlc", "keyvault": "Key Vault", "opted_out": "opted out", "disabled": "disabled",
              "nobody": "nobody"}  # fmt: skip
UNKNOWN = "unknown"
DUE_NOW = "due now"


@dataclass
class StatusView:
    snapshot_time: str
    vault: str
    groups: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {status: len(self.groups.get(status, [])) for status in STATUSES}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def members(self) -> list[Mapping[str, Any]]:
        return [row for status in STATUSES for row in self.groups.get(status, [])]

    @property
    def renewals_pending(self) -> int:
        return sum(1 for row in self.members if renewal_pending(row))

    @property
    def failed(self) -> int:
        return sum(1 for row in self.members if is_failed(row))

    @property
    def uncovered(self) -> int:
        return sum(1 for row in self.members if is_uncovered(row))


def renewal_pending(row: Mapping[str, Any]) -> bool:
    """A new version is pending; the row shows the last good version (rows from before the column: never)."""
    return row.get("RenewalPending") is True


def is_failed(row: Mapping[str, Any]) -> bool:
    """The last renewal failed: shown red whatever the expiry, and counted as Failed."""
    return str(row.get("LastRenewalOutcome") or "").startswith("failed")


def is_uncovered(row: Mapping[str, Any]) -> bool:
    """Nobody renews it (``renewal.outlook``): not certlc, not Key Vault, and nobody opted it out."""
    return row.get("RenewedBy") == "nobody"


def is_failed_event(row: Mapping[str, Any]) -> bool:
    """A history event that ended a renewal badly (failed, or denied by the CA): red in the history."""
    return row.get("Event") in (AuditEvent.FAILED, AuditEvent.DENIED)


def coverage(row: Mapping[str, Any]) -> str:
    """How loudly a row says nobody renews it: "" (someone does, or unknown), "uncovered", or "uncovered_urgent"
    once it is expiring soon or expired (the outage the coverage count exists to prevent)."""
    if not is_uncovered(row):
        return ""
    return "uncovered_urgent" if row.get("ExpiryStatus") in (STATUS_EXPIRED, STATUS_EXPIRING) else "uncovered"


def renewed_by(row: Mapping[str, Any]) -> str:
    """Who renews it, in words; unknown for rows from before the column."""
    return RENEWED_BY.get(str(row.get("RenewedBy")), UNKNOWN)


def next_renewal(row: Mapping[str, Any], snapshot_time: str) -> str:
    """When certlc renews it: the date, "due now" once the date has passed at the snapshot (the next sweep acts),
    "" when certlc does not renew it, unknown for rows from before the column."""
    if "NextRenewal" not in row:
        return UNKNOWN
    when = parse_time(row["NextRenewal"])
    if when is None:
        return ""
    snapshot = parse_time(snapshot_time)
    return DUE_NOW if snapshot is not None and when <= snapshot else f"{when:%Y-%m-%d}"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as the rows carry it, in UTC (one without an offset is UTC, as Log Analytics has it);
    None when absent or not a timestamp."""
    try:
        when = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return None if when is None else (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def readable_time(value: Any) -> str:
    """A row's timestamp as people read it, e.g. 2026-12-03 14:05 UTC; the value as given when it is not one."""
    when = parse_time(value)
    if when is None:
        return "" if value is None else str(value)
    return f"{when:%Y-%m-%d %H:%M} UTC"


def readable_duration(seconds: float | None) -> str:
    """A duration as people read it: 42 s, 3 min, 2 h 5 min, 3 d 4 h; "" when unknown."""
    if seconds is None:
        return ""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{secs} s"


def latest_snapshot(rows: Iterable[Mapping[str, Any]]) -> tuple[str, list[Mapping[str, Any]]]:
    """Only the newest snapshot counts, as in the workbook (older snapshots are history)."""
    rows = list(rows)
    if not rows:
        return "", []
    newest = max(str(r["TimeGenerated"]) for r in rows)
    return newest, [r for r in rows if str(r["TimeGenerated"]) == newest]


def vaults_in(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted({str(r["KeyVault"]) for r in rows}, key=str.lower)


def build_history(rows: Iterable[Mapping[str, Any]], vault: str = ALL_VAULTS) -> list[Mapping[str, Any]]:
    """The renewal history (audit events) of one vault or all, newest first."""
    chosen = [r for r in rows if vault in (ALL_VAULTS, r.get("KeyVault"))]
    return sorted(chosen, key=_event_time, reverse=True)


def _event_time(row: Mapping[str, Any]) -> float:
    when = parse_time(row.get("TimeGenerated"))
    return when.timestamp() if when is not None else float("-inf")


def build_view(rows: Iterable[Mapping[str, Any]], vault: str = ALL_VAULTS) -> StatusView:
    snapshot_time, latest = latest_snapshot(rows)
    view = StatusView(snapshot_time=snapshot_time, vault=vault, groups={s: [] for s in STATUSES})
    for row in latest:
        if vault not in (ALL_VAULTS, row["KeyVault"]):
            continue
        view.groups.setdefault(str(row["ExpiryStatus"]), []).append(row)
    for members in view.groups.values():
        members.sort(key=lambda r: (r.get("DaysLeft") is None, r.get("DaysLeft") or 0, r["KeyVault"], r["CertName"]))
    return view
