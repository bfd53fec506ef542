"""The status snapshot run, shared by the ``ingest`` timer and ``certlc ingest``.

Gather (list every configured vault, details only for new versions, and for certificates renewed through ACME
the CA's suggested window, from the cache the sweep shares) → decide (build one row per certificate with one
shared snapshot time) → act (upload to the DCR).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingestion.cache import DetailCache, default_cache_path
from ingestion.gather import VaultListing, inside_renewal_window, keep_failed_vault_entries, list_vault
from ingestion.rows import EXPIRING_DAYS_DEFAULT, build_row
from ingestion.upload import IngestionConfigError, UploadResult, logs_ingestion_client, target_from_env, upload_rows
from renewal.setting_values import whole_number_setting

if TYPE_CHECKING:
    from ingestion.rows import CertificateDetails, ListedCertificate
    from renewal.ca.acme_ari import RenewalWindow
    from renewal.settings import Settings
    from renewal.vaults import Vault

log = logging.getLogger(__name__)
MAX_PARALLEL_VAULTS = 8


@dataclass
class VaultReport:
    vault: str
    rows: int
    list_pages: int
    detail_reads: int
    error: str = ""
    version_pages: int = 0
    operation_reads: int = 0
    renewals_pending: int = 0

    @property
    def keyvault_calls(self) -> int:
        return self.list_pages + self.detail_reads + self.version_pages + self.operation_reads


@dataclass
class Snapshot:
    snapshot_time: datetime
    rows: list[dict[str, Any]]
    vaults: list[VaultReport]


@dataclass
class IngestReport:
    snapshot_time: datetime
    vaults: list[VaultReport]
    upload: UploadResult = field(default_factory=UploadResult)

    @property
    def keyvault_calls(self) -> int:
        return sum(v.keyvault_calls for v in self.vaults)

    @property
    def ok(self) -> bool:
        return not self.upload.errors and not any(v.error for v in self.vaults)

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot_time": self.snapshot_time.isoformat(),
            "ok": self.ok,
            "keyvault_calls": self.keyvault_calls,
            "vaults": [{**asdict(v), "keyvault_calls": v.keyvault_calls} for v in self.vaults],
            "upload": asdict(self.upload),
        }

    def summary(self) -> str:
        failed = [v.vault for v in self.vaults if v.error]
        text = (
            f"snapshot {self.snapshot_time.isoformat()}: {self.upload.rows} rows uploaded in "
            f"{self.upload.calls} calls from {len(self.vaults)} vaults, {self.keyvault_calls} Key Vault calls"
        )
        return text + (f"; failed vaults: {', '.join(failed)}" if failed else "")


def expiring_days(env: Mapping[str, str]) -> int:
    return whole_number_setting(
        env, "CERTLC_EXPIRING_DAYS", EXPIRING_DAYS_DEFAULT, low=0, unit="days", error=IngestionConfigError
    )


def _default_client_factory(vault_url: str, env: Mapping[str, str]) -> Any:
    from renewal.clients import certificate_client

    return certificate_client(vault_url, env)


def suggested_windows(
    env: Mapping[str, str], settings: Settings, now: datetime
) -> Callable[[ListedCertificate, CertificateDetails], RenewalWindow | None]:
    """The ACME CA's suggested window of a listed certificate (RFC 9773), as the sweep and ``certlc status`` use
    it; ``None`` for other CAs, certificates ARI cannot name, and when the CA offers none or cannot be asked."""
    from renewal.ca.acme_ari import renewal_window_of
    from renewal.clock import clock_from_env
    from renewal.decide import ca_of
    from renewal.runtime import ca_factory

    ca_for = ca_factory(env, clock_from_env(env))  # an adapter is built only when a certificate needs it

    def suggested(listed: ListedCertificate, details: CertificateDetails) -> RenewalWindow | None:
        ca_name = ca_of(listed.tags, settings.window)
        return renewal_window_of(details.ari_id, listed.expires_on, ca_name, ca_for, now)

    return suggested


def served_summaries(env: Mapping[str, str], vaults: list[Vault]) -> dict[tuple[str, str], str]:
    """The SERVED column from the sweep's last target check (``renewal.targets.store``), one read per vault; empty
    where there is no record or storage cannot be read (the rows go out all the same)."""
    from renewal.ledger import lock_container
    from renewal.targets.store import TargetStore

    found: dict[tuple[str, str], str] = {}
    try:
        store = TargetStore(lock_container(env, retry_total=0, connection_timeout=5, read_timeout=10))
        for vault in vaults:
            for name, summary in store.load_all(vault.name).summaries.items():
                found[(vault.name.lower(), name)] = summary
    except Exception as exc:  # the snapshot is worth more than its SERVED column
        log.warning(
            "ingest: the targets' last check could not be read: %s", str(exc).splitlines()[0] if str(exc) else exc
        )
    return found


def take_snapshot(
    env: Mapping[str, str],
    *,
    now: datetime | None = None,
    client_factory: Callable[[str, Mapping[str, str]], Any] = _default_client_factory,
) -> Snapshot:
    """Rows for every configured vault; a failing vault is reported and skipped."""
    from renewal.settings import settings_from_env

    snapshot_time = (now or datetime.now(UTC)).astimezone(UTC)
    threshold = expiring_days(env)
    settings = settings_from_env(env)  # the renewal's own window and canaries, read once
    check_operation = inside_renewal_window(snapshot_time, settings.window)
    cache = DetailCache.load(default_cache_path(env))
    seen: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    reports: list[VaultReport] = []
    failed: set[str] = set()
    vaults = list(settings.vaults.values())

    def one(vault: Vault) -> tuple[Vault, VaultListing, dict[str, Any]]:
        used: dict[str, Any] = {}
        return vault, list_vault(vault.name, client_factory(vault.url, env), cache, used, check_operation), used

    # Vaults are independent (each has its own Key Vault throttling budget): read them side by side.
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_VAULTS, len(vaults)))) as pool:
        results = list(pool.map(one, vaults))
    suggested = suggested_windows(env, settings, snapshot_time)
    served = served_summaries(env, [vault for vault, _, _ in results])
    for vault, listing, used in results:
        seen.update(used)
        if listing.error:
            failed.add(vault.name.lower())
            log.warning("ingest: vault skipped: %s", listing.error)
        rows.extend(
            build_row(
                listed,
                details,
                snapshot_time,
                threshold,
                settings.window,
                settings.canary,
                suggested(listed, details),
                served.get((vault.name.lower(), listed.name.lower()), ""),
            )
            for listed, details in listing.certificates
        )
        reports.append(
            VaultReport(
                vault.name,
                len(listing.certificates),
                listing.list_pages,
                listing.detail_reads,
                listing.error,
                version_pages=listing.version_pages,
                operation_reads=listing.operation_reads,
                renewals_pending=sum(1 for listed, _ in listing.certificates if listed.renewal_pending),
            )
        )
    cache.save(keep_failed_vault_entries(cache, failed, seen))
    return Snapshot(snapshot_time, rows, reports)


def ingest(env: Mapping[str, str], *, now: datetime | None = None) -> IngestReport:
    target = target_from_env(env)  # fail on settings before reading any vault
    snapshot = take_snapshot(env, now=now)
    report = IngestReport(snapshot.snapshot_time, snapshot.vaults)
    if snapshot.rows:
        report.upload = upload_rows(logs_ingestion_client(env), target, snapshot.rows)
    for error in report.upload.errors:
        log.error("ingest: %s", error)
    log.info("ingest: %s", report.summary())
    return report
