"""What the workbook shows, computed from status rows: latest snapshot, counts and groups by status, who renews
each certificate and when, and the renewal history newest first.

The HTML page and the terminal table both render this one view. Rows from before a column existed still render:
a missing column reads as unknown, never as a default that would claim something.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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


# -- how old the snapshot is, on the clock it was taken on ------------------------------------------------------

MOVED_AFTER_SECONDS = 60  # a clock this far ahead of the computer's has been moved (network delays are far less)


@dataclass(frozen=True)
class PageClock:
    """The clock the snapshot's time is read against: this computer's, or the local stack's, which
    ``certlc demo`` and tests move forward (the Key Vault emulator's clock, that the functions also read)."""

    now: datetime
    ahead_seconds: float = 0.0  # how far ahead of this computer's clock it runs
    name: str = "this computer's clock"

    @property
    def moved(self) -> bool:
        return self.ahead_seconds >= MOVED_AFTER_SECONDS


def wall_clock() -> PageClock:
    return PageClock(datetime.now(UTC))


def stack_clock(ahead_seconds: float, wall: datetime | None = None) -> PageClock:
    """The local stack's clock, ``ahead_seconds`` ahead of this computer's."""
    now = (wall or datetime.now(UTC)) + timedelta(seconds=ahead_seconds)
    return PageClock(now, ahead_seconds, "the local stack's clock")


@dataclass(frozen=True)
class Freshness:
    """When the snapshot was taken and how old it is, on ``clock``; what the page's header and the command say."""

    taken: datetime | None
    clock: PageClock

    @property
    def age_seconds(self) -> float | None:
        """None without a snapshot, and for one from after the clock's now (taken on a clock moved further)."""
        if self.taken is None:
            return None
        age = (self.clock.now - self.taken).total_seconds()
        return max(0.0, age) if age > -MOVED_AFTER_SECONDS else None

    def said(self) -> str:
        """``snapshot taken 2026-12-07 19:23 UTC, 3 min ago``, and on a moved clock what it was moved by."""
        if self.taken is None:
            return "no snapshot yet"
        when = readable_time(self.taken.isoformat())
        age = self.age_seconds
        if age is None:
            ahead = readable_span((self.taken - self.clock.now).total_seconds())
            return (
                f"snapshot taken {when}, {ahead} ahead of {self.clock.name}: the clock it was taken on had been "
                "moved forward"
            )
        text = f"snapshot taken {when}, " + (f"{readable_duration(age)} ago" if age >= 60 else "less than a minute ago")
        if self.clock.moved:
            text += f", by {self.clock.name}, which was moved forward {readable_span(self.clock.ahead_seconds)}"
        return text


def freshness(snapshot_time: str, clock: PageClock | None = None) -> Freshness:
    return Freshness(parse_time(snapshot_time), clock or wall_clock())


def readable_span(seconds: float) -> str:
    """A long span in words, whole days as days: 30 days, 1 day 4 h, 3 h 5 min."""
    whole = max(0, round(seconds / 60) * 60)  # to the minute: a clock read over the network is a little late
    if whole < 86400:
        return readable_duration(whole)
    days, hours = divmod(round(whole / 3600), 24)
    said = f"{days} day{'s' if days != 1 else ''}"
    return f"{said} {hours} h" if hours else said
