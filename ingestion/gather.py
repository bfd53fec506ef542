"""Key Vault side of the snapshot: list each vault (paged) and read details of unseen versions.

A renewal in flight: while a manual create is pending, Key Vault may list the new version's disabled placeholder
(no certificate, no thumbprint) as the certificate. Such an entry is described by the newest good version
(enabled, with a thumbprint) from the certificate's versions list, and marked ``renewal_pending``. Where Key
Vault keeps listing the previous version instead, nothing in the listing tells: the pending operation is read for
the certificates the renewal lock names as unfinished (``pending_reads``), or, when the lock's records cannot be
listed, for the managed certificates inside their renewal window (``inside_renewal_window``).

Pace: a vault's reads run on a few threads side by side (``READS_PER_VAULT``), each request weighed by its key
(``renewal.pacing.limits``) and let through by the vault's ``ReadPacer`` at no more than ``READ_SHARE`` of Key
Vault's "other transactions" limit; a 429 pauses the vault's readers (Retry-After, else exponential back-off) and
is retried, it never fails the snapshot by itself (``pacing_policy``).
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ingestion.cache import DetailCache, cache_key
from ingestion.rows import CertificateDetails, ListedCertificate
from renewal import tags as cert_tags
from renewal.decide import has_auto_renew, template_of
from renewal.keyvault import CertificateSummary, is_placeholder
from renewal.pacing.limits import OTHERS_PER_VAULT, SUBSCRIPTION_FACTOR, WINDOW_SECONDS, key_kind

log = logging.getLogger(__name__)

# Whether to read a listed certificate's pending operation (the listing does not say whether one exists).
OperationCheck = Callable[[ListedCertificate, CertificateDetails], bool]


@dataclass
class VaultListing:
    vault: str
    certificates: list[tuple[ListedCertificate, CertificateDetails]] = field(default_factory=list)
    list_pages: int = 0
    detail_reads: int = 0
    version_pages: int = 0  # versions lists of certificates that show a placeholder
    operation_reads: int = 0  # pending operations read (see ``OperationCheck``)
    error: str = ""
    throttled: int = 0  # 429s Key Vault answered (each waited out and retried)
    read_weight: int = 0  # the weight of every request sent, as Key Vault counts it against its limit
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def keyvault_calls(self) -> int:
        return self.list_pages + self.detail_reads + self.version_pages + self.operation_reads

    def add(self, counter: str, n: int = 1) -> None:
        """Count from any of the vault's reader threads."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)


def listed_from_properties(vault: str, props: Any, *, renewal_pending: bool = False) -> ListedCertificate:
    thumb = props.x509_thumbprint
    return ListedCertificate(
        vault=vault,
        name=props.name,
        thumbprint=thumb.hex().upper() if thumb else "",
        not_before=props.not_before,
        expires_on=props.expires_on,
        enabled=bool(props.enabled) if props.enabled is not None else True,
        tags=dict(props.tags or {}),
        renewal_pending=renewal_pending,
    )


def shows_placeholder(props: Any) -> bool:
    """A listing entry that is the disabled placeholder of a pending create, not a certificate.

    Disabled and without an x509 thumbprint: Key Vault gives a placeholder dates too, and a version an operator
    disabled keeps its certificate, and so its thumbprint (``renewal.keyvault.is_placeholder`` decides).
    """
    enabled = bool(props.enabled) if props.enabled is not None else True
    summary = CertificateSummary(
        props.name,
        props.version,
        enabled,
        props.not_before,
        props.expires_on,
        dict(props.tags or {}),
        has_certificate=props.x509_thumbprint is not None,
    )
    return is_placeholder(summary)


def newest_good_version(client: Any, name: str, listing: VaultListing) -> Any | None:
    """The newest enabled version that holds a certificate, from the versions list (one call per page)."""
    good: list[Any] = []
    for page in client.list_properties_of_certificate_versions(name).by_page():
        listing.add("version_pages")
        good.extend(p for p in page if p.enabled and p.x509_thumbprint)
    if not good:
        return None
    oldest = datetime.min.replace(tzinfo=UTC)
    # as KeyVault.current decides: created times have whole seconds and can tie, then the later expiry wins
    return max(good, key=lambda p: (p.created_on or oldest, p.expires_on or oldest))


def read_version_details(client: Any, name: str, version: str, listing: VaultListing) -> CertificateDetails:
    """A version's details; the SDK's versioned read may leave the policy out, then it is read on its own."""
    listing.add("detail_reads")
    certificate = client.get_certificate_version(name, version)
    details = details_from_certificate(certificate)
    if certificate.policy is None:
        listing.add("detail_reads")
        policy = client.get_certificate_policy(name)
        details = replace(
            details,
            policy_issuer=policy.issuer_name or "",
            auto_renew=has_auto_renew(policy),
            read_weight=key_kind(policy).other_cost,
        )
    return details


def operation_in_progress(client: Any, name: str, listing: VaultListing) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    listing.add("operation_reads")
    try:
        operation = client.get_certificate_operation(name)
    except ResourceNotFoundError:
        return False
    return (operation.status or "").lower() == "inprogress"


def inside_renewal_window(now: datetime, window: Any) -> OperationCheck:
    """The ``OperationCheck`` ingestion uses: managed, enabled, and due by the renewal decision's own threshold."""
    from renewal.decide import renewal_threshold

    def check(listed: ListedCertificate, details: CertificateDetails) -> bool:
        if (
            not listed.enabled
            or listed.expires_on is None
            or not cert_tags.is_managed(details.policy_issuer, listed.tags)
        ):
            return False
        return listed.expires_on - now <= renewal_threshold(listed.not_before, listed.expires_on, listed.tags, window)

    return check


def pending_reads(unfinished: Collection[str]) -> OperationCheck:
    """The ``OperationCheck`` ingestion uses when the renewal lock's records could be listed: only the certificates
    whose renewal record is not finished (``BlobLedger.unfinished``, names in lower case). certlc starts a pending
    operation only while it holds such a record, and a listed placeholder already says pending without a read."""
    names = frozenset(n.lower() for n in unfinished)

    def check(listed: ListedCertificate, details: CertificateDetails) -> bool:
        return listed.name.lower() in names

    return check


def details_from_certificate(certificate: Any) -> CertificateDetails:
    from cryptography import x509

    subject = issuer = sans = ""
    if certificate.cer:
        cert = x509.load_der_x509_certificate(bytes(certificate.cer))
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
        sans = ", ".join(_san_values(cert))
    policy = certificate.policy
    return CertificateDetails(
        ari_id=_ari_id(bytes(certificate.cer)) if certificate.cer else "",
        template=template_of(bytes(certificate.cer) if certificate.cer else None) or "",
        version=certificate.properties.version or "",
        subject=subject,
        issuer=issuer,
        sans=sans,
        policy_issuer=(policy.issuer_name or "") if policy is not None else "",
        auto_renew=has_auto_renew(policy),
        read_weight=key_kind(policy).other_cost if policy is not None else 1,
    )


def _ari_id(cer: bytes) -> str:
    from renewal.ca.acme_ari import cert_id_of

    try:
        return cert_id_of(cer) or ""
    except ValueError:  # not a certificate ARI can name
        return ""


def _san_values(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in ext]


def describe_error(vault: str, error: Exception) -> str:
    """One line an operator can act on; never includes tokens or headers."""
    status = getattr(error, "status_code", None)
    message = getattr(error, "message", None) or str(error)
    first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    hint = {
        401: "check the identity's access token",
        403: "grant the identity certificates list/get on the vault (Key Vault Certificates Officer)",
        404: "check the vault URL in CERTLC_VAULTS",
        429: "Key Vault is throttling; the next run retries",
    }.get(status or 0, "")
    prefix = f"{vault}: HTTP {status}" if status else f"{vault}: {type(error).__name__}"
    return f"{prefix}: {first_line}" + (f" ({hint})" if hint else "")


def list_vault(
    vault: str,
    client: Any,
    cache: DetailCache,
    seen: dict[str, CertificateDetails],
    check_operation: OperationCheck | None = None,
    *,
    readers: int = 1,
    pacers: tuple[ReadPacer, ...] = (),
) -> VaultListing:
    """List one vault; on any failure the vault contributes no rows (no partial vault in a snapshot).

    ``seen`` collects the cache entries in use, so the saved cache stays bounded. Key Vault calls: the list
    pages, a read per version not cached, and for a renewal in flight the versions list (placeholder listed)
    or the pending operation (``check_operation`` says for which certificates). The listing is paged on the
    calling thread while ``readers`` threads read what each listed certificate needs, in listing order; with
    ``pacers`` (the vault's first) every request of a client built with ``pacing_policy`` waits for its turn
    at each, and a 429 is waited out.
    """
    from azure.core.exceptions import AzureError

    listing = VaultListing(vault=vault)

    def describe(props: Any) -> tuple[ListedCertificate, CertificateDetails, str]:
        with paced(pacers, listing):
            return _describe(vault, client, cache, check_operation, props, listing)

    found: list[tuple[ListedCertificate, CertificateDetails]] = []
    used: dict[str, CertificateDetails] = {}
    pool = ThreadPoolExecutor(max(1, readers), thread_name_prefix=f"ingest-{vault}")
    futures: list[Future[tuple[ListedCertificate, CertificateDetails, str]]] = []
    try:
        with paced(pacers, listing):
            for page in client.list_properties_of_certificates().by_page():
                listing.add("list_pages")
                for props in page:  # what needs no read is done here: a thread hand-off costs more than it
                    done = _without_reads(vault, cache, check_operation, props)
                    futures.append(done if done is not None else pool.submit(describe, props))
        for future in futures:
            listed, details, key = future.result()
            used[key] = details
            found.append((listed, details))
    except (AzureError, ValueError) as error:
        listing.error = describe_error(vault, error)
        return listing
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    listing.certificates = found
    seen.update(used)
    return listing


def _without_reads(
    vault: str, cache: DetailCache, check_operation: OperationCheck | None, props: Any
) -> Future[tuple[ListedCertificate, CertificateDetails, str]] | None:
    """A listed certificate's row inputs when they need no Key Vault read (cached details, nothing to ask)."""
    if shows_placeholder(props):
        return None
    listed = listed_from_properties(vault, props)
    key = cache_key(vault, listed.name, listed.thumbprint)
    details = cache.get(key) if listed.thumbprint else None
    if details is None or (check_operation is not None and check_operation(listed, details)):
        return None
    done: Future[tuple[ListedCertificate, CertificateDetails, str]] = Future()
    done.set_result((listed, details, key))
    return done


def _describe(
    vault: str,
    client: Any,
    cache: DetailCache,
    check_operation: OperationCheck | None,
    props: Any,
    listing: VaultListing,
) -> tuple[ListedCertificate, CertificateDetails, str]:
    """One listed certificate's row inputs and cache key; its reads one after another (each needs the last)."""
    placeholder = shows_placeholder(props)
    good = newest_good_version(client, props.name, listing) if placeholder else None
    if good is not None:
        listed = listed_from_properties(vault, good, renewal_pending=True)
    elif placeholder:  # a first version still pending: nothing issued yet
        listed = replace(listed_from_properties(vault, props, renewal_pending=True), not_before=None, expires_on=None)
    else:
        listed = listed_from_properties(vault, props)
    key = cache_key(vault, listed.name, listed.thumbprint)
    details = cache.get(key) if listed.thumbprint else None
    if details is None and good is not None:
        details = read_version_details(client, listed.name, good.version, listing)
    elif details is None:
        listing.add("detail_reads")
        details = details_from_certificate(client.get_certificate(listed.name))
    ask = not listed.renewal_pending and check_operation is not None and check_operation(listed, details)
    if ask:
        with weighing(details.read_weight):
            if operation_in_progress(client, listed.name, listing):
                listed = replace(listed, renewal_pending=True)
    return listed, details, key


# --- pace: Key Vault's per-vault read limit, and 429s -------------------------------------------------------------

READ_SHARE = 0.9  # of Key Vault's limit: the renewals and operators' tools share the vault
VAULT_READ_RATE = READ_SHARE * OTHERS_PER_VAULT / WINDOW_SECONDS  # 360 weight a second (RSA 2048/EC software: 1)
SUBSCRIPTION_READ_RATE = VAULT_READ_RATE * SUBSCRIPTION_FACTOR  # every vault of a subscription together
READS_PER_VAULT = 12  # reader threads per vault: enough to reach the rate over a ~20-30 ms round trip
BURST_SECONDS = 0.25  # a pacer lets this much of its rate through at once: any 10 s then stays under 92.5 %
BACKOFF_FIRST = 0.5  # seconds after a 429 without Retry-After; doubled for each 429 in a row
BACKOFF_MOST = 30.0
THROTTLED_MOST_SECONDS = 600.0  # waiting out 429s for longer than this in one run gives the vault up (next run)


class ReadPacer:
    """Lets weighted requests through at ``rate`` weight a second (a leaky bucket ``burst_seconds`` deep), from any
    number of threads, each waiting its turn in order of arrival.

    A 429 (``throttled``) pauses every request until its Retry-After (else ``BACKOFF_FIRST`` doubled per 429 in a
    row, at most ``BACKOFF_MOST``) and halves the rate; the rate climbs back by a tenth of the target a second.
    """

    def __init__(
        self,
        rate: float = VAULT_READ_RATE,
        *,
        burst_seconds: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        throttled_most: float = THROTTLED_MOST_SECONDS,
    ) -> None:
        self.target = self.rate = float(rate)
        self.burst_seconds = burst_seconds
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._due = clock()  # when the bucket is empty again (the theoretical arrival time)
        self._adjusted = self._due
        self._in_a_row = 0
        self.throttled_most = throttled_most
        self.throttled_seconds = 0.0  # back-off ordered by 429s, in all
        self.throttled_count = 0
        self.granted_weight = 0

    def acquire(self, weight: int = 1) -> float:
        """Wait until ``weight`` may go; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            if self.rate < self.target and now > self._adjusted:  # climbing back once a pause is over
                self.rate = min(self.target, self.rate + self.target / 10 * (now - self._adjusted))
            self._adjusted = max(self._adjusted, now)
            due = max(self._due, now)
            at = max(now, due - self.burst_seconds)
            self._due = due + weight / self.rate
            self.granted_weight += weight
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return max(0.0, wait)

    def succeeded(self) -> None:
        self._in_a_row = 0

    def throttled(self, retry_after: float | None) -> bool:
        """Key Vault answered 429: pause and slow down. False once the run waited ``throttled_most`` seconds."""
        with self._lock:
            self.throttled_count += 1
            self._in_a_row += 1
            if retry_after is None:
                delay = min(BACKOFF_MOST, BACKOFF_FIRST * 2 ** (self._in_a_row - 1))
            else:
                delay = min(max(0.0, retry_after), self.throttled_most)
            if self.throttled_seconds + delay > self.throttled_most:
                return False
            self.throttled_seconds += delay
            now = self._clock()
            self.rate = max(self.target / 16, self.rate / 2)
            self._adjusted = now + delay
            # nobody goes before the pause ends, and no burst after it
            self._due = max(self._due, now + delay + self.burst_seconds)
            return True


_pacing = threading.local()  # the pacers and listing of the vault this thread reads, and the weight of its reads


@contextlib.contextmanager
def paced(pacers: tuple[ReadPacer, ...], listing: VaultListing | None = None) -> Iterator[None]:
    """Requests this thread sends meanwhile go through ``pacers`` (a client built with ``pacing_policy``)."""
    before = (getattr(_pacing, "pacers", ()), getattr(_pacing, "listing", None))
    _pacing.pacers, _pacing.listing = pacers, listing
    try:
        yield
    finally:
        _pacing.pacers, _pacing.listing = before


@contextlib.contextmanager
def weighing(weight: int) -> Iterator[None]:
    """Requests this thread sends meanwhile weigh ``weight`` each (1 unless a certificate's key says more)."""
    before = getattr(_pacing, "weight", 1)
    _pacing.weight = max(1, int(weight))
    try:
        yield
    finally:
        _pacing.weight = before


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def pacing_policy() -> Any:
    """An azure-core policy for the Key Vault client (``per_retry_policies``): each request waits for its turn at
    the pacers of the thread's vault (``paced``) and a 429 is waited out and sent again, here, so the SDK's retry
    policy never sees it (its own back-off would stop the one thread but not the vault's other readers)."""
    from azure.core.pipeline.policies import HTTPPolicy

    class PacedRequests(HTTPPolicy):  # type: ignore[type-arg]
        def send(self, request: Any) -> Any:
            while True:
                pacers: tuple[ReadPacer, ...] = getattr(_pacing, "pacers", ())
                weight = getattr(_pacing, "weight", 1)
                listing: VaultListing | None = getattr(_pacing, "listing", None)
                for pacer in pacers:
                    pacer.acquire(weight)
                if listing is not None:
                    listing.add("read_weight", weight)
                response = self.next.send(request)
                if response.http_response.status_code != 429 or not pacers:
                    for pacer in pacers:
                        pacer.succeeded()
                    return response
                if listing is not None:
                    listing.add("throttled")
                delay = retry_after_seconds(response.http_response.headers.get("Retry-After"))
                if not pacers[0].throttled(delay):  # the vault's own pacer (a subscription's is shared)
                    return response  # waited long enough this run: the SDK's few retries, then the vault fails
                log.info(
                    "ingest: Key Vault throttled a read (429); waiting %s",
                    f"{delay:g} s (Retry-After)" if delay is not None else "with exponential back-off",
                )

    return PacedRequests()


def keep_failed_vault_entries(
    cache: DetailCache, failed_vaults: set[str], seen: Mapping[str, CertificateDetails]
) -> dict[str, CertificateDetails]:
    """A vault that failed this run keeps its cached details for the next run."""
    keep = dict(seen)
    for key, value in cache.entries.items():
        if key.split("/", 1)[0] in failed_vaults:
            keep.setdefault(key, value)
    return keep
