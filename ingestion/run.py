"""The status snapshot run, shared by the ``ingest`` timer and ``certlc ingest``.

Gather (list every configured vault, details only for new versions, pending operations only where the renewal
lock says certlc is renewing, and for certificates renewed through ACME the CA's suggested window, from the cache
the sweep shares) → decide (build one row per certificate with one shared snapshot time) → act (upload to the DCR).

Each vault is read on its own threads under its own pacer (``ingestion.gather.ReadPacer``, 90 % of Key Vault's
read limit), all of them under one more for the subscription's ceiling, through a requests session that skips
requests' per-request environment look-ups (proxies and CA bundle are read once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingestion.cache import DetailCache, default_cache_path
from ingestion.gather import (
    READS_PER_VAULT,
    SUBSCRIPTION_READ_RATE,
    VAULT_READ_RATE,
    OperationCheck,
    ReadPacer,
    VaultListing,
    inside_renewal_window,
    keep_failed_vault_entries,
    list_vault,
    pacing_policy,
    pending_reads,
)
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
    pending_reads: str = ""  # which pending operations were read: "unfinished renewals" or "renewal window"
    read_weight: int = 0  # the requests' weight as Key Vault counts it against its limit
    throttled: int = 0  # 429s waited out
    seconds: float = 0.0  # reading the vault: the lock's listing, the vault's listing and the reads

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
    """The ingestion's certificate client: ``renewal.clients.certificate_client`` with the pacing policy and a
    transport of its own (``keyvault_transport``)."""
    from renewal.clients import certificate_client

    return certificate_client(
        vault_url, env, transport=keyvault_transport(vault_url, env), per_retry_policies=[pacing_policy()]
    )


def keyvault_transport(vault_url: str, env: Mapping[str, str], pool: int = READS_PER_VAULT + 4) -> Any:
    """azure-core's ``RequestsTransport`` on a session without ``trust_env`` and with a connection pool for the
    vault's reader threads.

    With ``trust_env`` on, requests looks for a netrc file, the proxy variables and the CA bundle variables on
    every request; here they are read once: the proxies for this vault's URL (``NO_PROXY`` honoured), and
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` when no ``CERTLC_KEYVAULT_CA_BUNDLE`` is set. The transport owns
    the session: closing the client closes it. A transport given to the client bypasses the client's own
    connection options, so the deadlines of ``renewal.clients.keyvault_client_options`` are given here too.
    """
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    from renewal.clients import keyvault_client_options

    options = keyvault_client_options(env)
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(
        pool_connections=1, pool_maxsize=pool, max_retries=Retry(total=False, redirect=False, raise_on_status=False)
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(vault_url))
    verify = (
        options.get("connection_verify") or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    )
    return RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=options["connection_timeout"],
        read_timeout=options["read_timeout"],
        connection_verify=verify or True,
    )


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


def unfinished_renewals(env: Mapping[str, str]) -> Callable[[str], set[str] | None]:
    """For a vault name, the certificates whose renewal record in the lock's container is not finished (one
    listing, ``BlobLedger.unfinished``); None when the container is not configured or cannot be listed, which the
    caller logs and answers with the renewal-window rule."""
    from renewal.ledger import BlobLedger, lock_container

    try:
        ledger = BlobLedger(lock_container(env, retry_total=0, connection_timeout=5, read_timeout=10))
    except Exception as exc:  # not configured (no storage settings): the snapshot still goes out
        reason = _first_line(exc)
        return lambda vault: _fallback(vault, f"no renewal lock container ({reason})")

    def unfinished(vault: str) -> set[str] | None:
        try:
            return ledger.unfinished(vault)
        except Exception as exc:  # LockUnavailable, or storage refusing the identity
            return _fallback(vault, f"the renewal records could not be listed ({_first_line(exc)})")

    return unfinished


def _fallback(vault: str, reason: str) -> None:
    log.warning(
        "ingest: %s: %s; reading the pending operation of every managed certificate inside its renewal window",
        vault,
        reason,
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


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
    in_window = inside_renewal_window(snapshot_time, settings.window)
    unfinished = unfinished_renewals(env)
    cache = DetailCache.load(default_cache_path(env))
    seen: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    reports: list[VaultReport] = []
    failed: set[str] = set()
    vaults = list(settings.vaults.values())
    subscription = ReadPacer(SUBSCRIPTION_READ_RATE)  # the vaults may share a subscription: its ceiling is 5 vaults'

    def one(vault: Vault) -> tuple[Vault, VaultListing, dict[str, Any], str, float]:
        started = time.perf_counter()
        used: dict[str, Any] = {}
        with ThreadPoolExecutor(1) as lock_reader:  # the lock's listing while the vault's first page comes
            names = lock_reader.submit(unfinished, vault.name)
            chosen: list[OperationCheck] = []

            def check(listed: ListedCertificate, details: CertificateDetails) -> bool:
                if not chosen:  # the first certificate that may need a read waits for the lock's listing
                    found = names.result()
                    chosen.append(in_window if found is None else pending_reads(found))
                return chosen[0](listed, details)

            client = client_factory(vault.url, env)
            with contextlib.closing(client) if hasattr(client, "close") else contextlib.nullcontext():
                listing = list_vault(
                    vault.name,
                    client,
                    cache,
                    used,
                    check,
                    readers=READS_PER_VAULT,
                    pacers=(ReadPacer(VAULT_READ_RATE), subscription),
                )
            found = names.result()
        used_rule = "renewal window" if found is None else "unfinished renewals"
        return vault, listing, used, used_rule, time.perf_counter() - started

    # Vaults are independent (each has its own Key Vault throttling budget): read them side by side.
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_VAULTS, len(vaults)))) as pool:
        results = list(pool.map(one, vaults))
    suggested = suggested_windows(env, settings, snapshot_time)
    served = served_summaries(env, [vault for vault, *_ in results])
    for vault, listing, used, rule, seconds in results:
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
                pending_reads=rule,
                read_weight=listing.read_weight,
                throttled=listing.throttled,
                seconds=round(seconds, 3),
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
