"""The revocation check the sweep calls: gather (cache or network), decide (``ocsp``, ``crl``), answer.

Answers are kept until the response's nextUpdate: one OCSP answer per certificate (responder, issuer key, serial),
one CRL per URL serving every certificate it covers, the issuer certificates found through caIssuers for a day.
A failure (the network, or an answer that cannot be trusted) is kept ``RETRY_AFTER`` only, so the next sweep asks
again; an answer without nextUpdate likewise, as RFC 5019 means by leaving it out. Each run (``start_run``) may
make ``max_fetches_per_run`` HTTP requests; past that, certificates are ``unknown`` for this sweep, not fetched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from cryptography import x509

from renewal.clock import Clock, utc_now
from renewal.revocation.crl import load_crl, status_from_crl
from renewal.revocation.fetch import Fetcher, FetchError
from renewal.revocation.issuer import certificates_in, pick_issuer
from renewal.revocation.ocsp import ocsp_request, status_from_ocsp
from renewal.revocation.status import (
    Problem,
    RevocationStatus,
    Source,
    ca_issuer_urls,
    none_answered,
    nothing_to_ask,
    unknown,
    where_to_ask,
)
from renewal.x509info import load_certificate, public_key_der

RETRY_AFTER = timedelta(minutes=5)  # a failed source is asked again after this: the next sweep, not this one
ISSUER_LIFETIME = timedelta(days=1)  # a CA certificate fetched from caIssuers
DEFAULT_MAX_FETCHES = 200

T = TypeVar("T")


@dataclass(frozen=True)
class _Kept(Generic[T]):
    value: T
    until: datetime


class _LimitReached(Exception):
    """This run's fetches are spent."""


class RevocationChecker:
    """Thread-safe: the cache and the run's count sit behind one lock, and one lock per URL or certificate lets one
    thread fetch a CRL while the others covered by it wait for it rather than fetch it again."""

    def __init__(
        self, fetcher: Fetcher, clock: Clock = utc_now, max_fetches_per_run: int = DEFAULT_MAX_FETCHES
    ) -> None:
        if max_fetches_per_run < 0:
            raise ValueError(f"max_fetches_per_run must be 0 or more, not {max_fetches_per_run}")
        self._fetcher = fetcher
        self._clock = clock
        self._max_fetches = max_fetches_per_run
        self._fetches = 0
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[object, ...], threading.Lock] = {}
        self._kept: dict[tuple[object, ...], _Kept[object]] = {}

    def start_run(self) -> None:
        """A new sweep: its own fetch budget; answers past their time are forgotten."""
        now = self._clock()
        with self._lock:
            self._fetches = 0
            self._kept = {key: kept for key, kept in self._kept.items() if now < kept.until}
            self._key_locks = {key: lock for key, lock in self._key_locks.items() if key in self._kept}

    @property
    def fetches(self) -> int:
        """HTTP requests made in this run."""
        with self._lock:
            return self._fetches

    def check(self, cert_der: bytes, issuers: Iterable[x509.Certificate] = ()) -> RevocationStatus:
        """The current answer for ``cert_der`` (DER or PEM), its issuer among ``issuers`` (the CA adapter's root
        and intermediates) or else fetched from its caIssuers URL. Never raises for the network or a bad answer;
        raises ValueError when ``cert_der`` is not a certificate (Key Vault's ``cer`` always is)."""
        cert = load_certificate(cert_der)
        now = self._clock()
        sources = where_to_ask(cert)
        if not sources:
            return nothing_to_ask(cert, now)
        issuer = pick_issuer(cert, issuers)
        if issuer is None:
            found = self._issuer_from_aia(cert, sources)
            if isinstance(found, RevocationStatus):
                return found
            issuer = found
        failures: list[RevocationStatus] = []
        for source in sources:
            status = self._ask(source, cert, issuer)
            if status.state != "unknown":
                return status
            failures.append(status)
        return failures[0] if len(failures) == 1 else none_answered(failures, self._clock())

    def _ask(self, source: Source, cert: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus:
        try:
            if source.kind == "ocsp":
                return self._ocsp(source.url, cert, issuer)
            return self._crl(source.url, cert, issuer)
        except _LimitReached:
            return unknown(str(source), Problem.LIMIT, self._limit_detail(), self._clock())

    def _ocsp(self, url: str, cert: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus:
        key = ("ocsp", url, public_key_der(issuer.public_key()), cert.serial_number)

        def fetch(now: datetime) -> _Kept[RevocationStatus]:
            try:
                body = self._fetcher.post_ocsp(url, ocsp_request(cert, issuer))
            except FetchError as exc:
                return _Kept(unknown(f"OCSP {url}", Problem.UNREACHABLE, str(exc), now), now + RETRY_AFTER)
            status = status_from_ocsp(body, cert, issuer, now, url)
            return _Kept(status, _until(status.next_update, now))

        return self._kept_or(key, fetch)

    def _crl(self, url: str, cert: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus:
        """A CRL is kept per URL and issuer key, and only once it proved to be that issuer's and current: a forged
        or stale one is a failure, kept briefly, so its nextUpdate cannot keep the real one out."""

        def fetch(now: datetime) -> _Kept[x509.CertificateRevocationList | RevocationStatus]:
            try:
                crl = load_crl(self._fetcher.get(url))
            except FetchError as exc:
                return _Kept(unknown(f"CRL {url}", Problem.UNREACHABLE, str(exc), now), now + RETRY_AFTER)
            except ValueError as exc:
                detail = f"the answer is not a CRL this can read ({exc})"
                return _Kept(unknown(f"CRL {url}", Problem.MALFORMED, detail, now), now + RETRY_AFTER)
            status = status_from_crl(crl, cert, issuer, now, url)
            if status.state == "unknown":
                return _Kept(status, now + RETRY_AFTER)
            return _Kept(crl, _until(crl.next_update_utc, now))

        kept = self._kept_or(("crl", url, public_key_der(issuer.public_key())), fetch)
        if isinstance(kept, RevocationStatus):
            return kept
        return status_from_crl(kept, cert, issuer, self._clock(), url)

    def _issuer_from_aia(self, cert: x509.Certificate, sources: list[Source]) -> x509.Certificate | RevocationStatus:
        """The issuer's certificate from the leaf's caIssuers URLs, or why it could not be found."""
        asked = "; ".join(str(source) for source in sources)
        name = cert.issuer.rfc4514_string()
        urls = ca_issuer_urls(cert)
        if not urls:
            detail = f"the issuer's certificate ({name}) is not among the CA certificates given, and the certificate "
            detail += "names no http caIssuers URL to fetch it from"
            return unknown(asked, Problem.NO_ISSUER, detail, self._clock())
        reasons: list[str] = []
        for url in urls:
            try:
                found = self._kept_or(("issuer", url), lambda now, url=url: self._fetch_issuers(url, now))
            except _LimitReached:
                return unknown(asked, Problem.LIMIT, self._limit_detail(), self._clock())
            if isinstance(found, str):
                reasons.append(found)
                continue
            issuer = pick_issuer(cert, found)
            if issuer is not None:
                return issuer
            reasons.append(f"{url} holds no certificate of {name} that signed this one")
        detail = f"the issuer's certificate ({name}) was not found: " + "; ".join(reasons)
        return unknown(asked, Problem.NO_ISSUER, detail, self._clock())

    def _fetch_issuers(self, url: str, now: datetime) -> _Kept[list[x509.Certificate] | str]:
        try:
            return _Kept(certificates_in(self._fetcher.get(url)), now + ISSUER_LIFETIME)
        except FetchError as exc:
            return _Kept(str(exc), now + RETRY_AFTER)
        except ValueError as exc:
            return _Kept(f"{url} holds no certificate this can read ({exc})", now + RETRY_AFTER)

    def _kept_or(self, key: tuple[object, ...], fetch: Callable[[datetime], _Kept[T]]) -> T:
        """The kept value for ``key`` while current, else ``fetch``'s, counted against the run's limit.

        Raises _LimitReached instead of fetching past the limit."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            now = self._clock()
            with self._lock:
                kept = self._kept.get(key)
                if kept is not None and now < kept.until:
                    return kept.value
                if self._fetches >= self._max_fetches:
                    raise _LimitReached
                self._fetches += 1
            fresh = fetch(now)
            with self._lock:
                self._kept[key] = fresh
            return fresh.value

    def _limit_detail(self) -> str:
        return f"not checked this sweep: {self._max_fetches} checks made, the limit"


def _until(next_update: datetime | None, now: datetime) -> datetime:
    """An answer holds until its nextUpdate; one without (or already past it) is asked again soon."""
    return next_update if next_update is not None and next_update > now else now + RETRY_AFTER
