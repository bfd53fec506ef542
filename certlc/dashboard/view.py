"""What the workbook shows, computed from status rows: latest snapshot, counts and groups by status.

The HTML page and the terminal table both render this one view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ingestion.schema import STATUS_EXPIRED, STATUS_EXPIRING, STATUS_OK, STATUSES

ALL_VAULTS = "*"
LABELS = {STATUS_EXPIRED: "Expired", STATUS_EXPIRING: "Expiring soon", STATUS_OK: "Not expired"}
COLOURS = {STATUS_EXPIRED: "#d13438", STATUS_EXPIRING: "#f2b705", STATUS_OK: "#107c10"}


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
    def renewals_pending(self) -> int:
        return sum(1 for members in self.groups.values() for row in members if renewal_pending(row))


def renewal_pending(row: Mapping[str, Any]) -> bool:
    """A new version is pending; the row shows the last good version (rows from before the column: never)."""
    return row.get("RenewalPending") is True


def is_failed(row: Mapping[str, Any]) -> bool:
    """The last renewal failed: shown red whatever the expiry, and counted as Failed."""
    return str(row.get("LastRenewalOutcome") or "").startswith("failed")


def is_uncovered(row: Mapping[str, Any]) -> bool:
    """Nobody renews it (``renewal.outlook``): not certlc, not Key Vault, and nobody opted it out."""
    return row.get("RenewedBy") == "nobody"


def latest_snapshot(rows: Iterable[Mapping[str, Any]]) -> tuple[str, list[Mapping[str, Any]]]:
    """Only the newest snapshot counts, as in the workbook (older snapshots are history)."""
    rows = list(rows)
    if not rows:
        return "", []
    newest = max(str(r["TimeGenerated"]) for r in rows)
    return newest, [r for r in rows if str(r["TimeGenerated"]) == newest]


def vaults_in(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted({str(r["KeyVault"]) for r in rows}, key=str.lower)


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
