"""ACME Renewal Information (RFC 9773): when an ACME CA asks for a certificate to be renewed.

Public CAs use ARI to ask clients to renew early, for example ahead of a mass revocation. For a certificate
whose CA is ``acme``, certlc asks the CA's ``renewalInfo`` resource for its suggested window and renews at a
moment inside it (``RenewalWindow.renew_at``); a moment in the past means now. The window only brings a renewal
forward: without an answer, or with a window later than certlc's own, the normal renewal window applies.

Gather, not decide: ``renewal_window`` fetches (one unauthenticated GET per certificate, kept per process until
the server's ``Retry-After``); ``renewal.decide`` takes the window as an input. A renewalInfo fetch that fails
never blocks a renewal: the certificate falls back to the normal window, and the failure is logged once until a
fetch works again. New orders name the certificate they replace (``replaces``, RFC 9773 section 5), unless the CA
says an earlier attempt's order already does.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509

from renewal.errors import ConfigError

if TYPE_CHECKING:
    from acme import client as acme_client
    from acme import messages

    from renewal.keyvault import CertificateSnapshot, CertificateSummary

log = logging.getLogger("certlc.ari")

ACME = "acme"
DEFAULT_RETRY_AFTER = timedelta(hours=6)  # a server that sends no Retry-After is asked again a few times a day
RETRY_AFTER_BOUNDS = (timedelta(minutes=1), timedelta(days=1))  # neither hammer the CA nor stop asking
FAILED_FETCH_RETRY = timedelta(hours=1)  # after a failure: the normal window until the next sweep asks again
DIRECTORY_LIFETIME = timedelta(days=1)


class AriError(Exception):
    """A renewalInfo answer that cannot be used (RFC 9773: treated as if there were no answer)."""


def cert_id(key_identifier: bytes, serial_number: int) -> str:
    """RFC 9773 section 4.1: base64url(AKI keyIdentifier) "." base64url(the serial's DER INTEGER content bytes).

    The serial is encoded as DER does: big-endian two's complement, so a leading zero byte keeps it positive."""
    serial = serial_number.to_bytes(serial_number.bit_length() // 8 + 1, "big", signed=True)
    return f"{_b64url(key_identifier)}.{_b64url(serial)}"


def cert_id_of(cer: bytes) -> str | None:
    """The ARI identifier of a DER certificate; ``None`` when it names no issuer key (no AKI keyIdentifier)."""
    cert = x509.load_der_x509_certificate(cer)
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if not aki.key_identifier:
        return None
    return cert_id(aki.key_identifier, cert.serial_number)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class RenewalWindow:
    """The CA's suggested window for one certificate, and why (``explanation_url``, for the people told)."""

    cert_id: str
    start: datetime
    end: datetime
    explanation_url: str | None = None

    @property
    def renew_at(self) -> datetime:
        """A uniformly distributed moment inside the window, as RFC 9773 section 4.2 asks, seeded by the
        certificate's identifier: every sweep, queue worker and status page picks the same moment without keeping
        state, while a fleet's certificates (whose identifiers are effectively random) still spread over the window."""
        fraction = int.from_bytes(hashlib.sha256(self.cert_id.encode()).digest()[:8], "big") / 2**64
        return self.start + (self.end - self.start) * fraction


def parse_renewal_info(certificate_id: str, body: Any) -> RenewalWindow:
    """A renewalInfo response body; an unusable one (RFC 9773: end not after start) raises ``AriError``."""
    window = body.get("suggestedWindow") if isinstance(body, Mapping) else None
    if not isinstance(window, Mapping):
        raise AriError("the renewalInfo answer has no suggestedWindow")
    start, end = (_timestamp(window.get(key), key) for key in ("start", "end"))
    if end <= start:
        raise AriError(f"the suggested window ends ({end:%Y-%m-%dT%H:%M:%SZ}) before it starts")
    explanation = body.get("explanationURL")
    usable = isinstance(explanation, str) and explanation.lower().startswith(("https://", "http://"))
    return RenewalWindow(certificate_id, start, end, explanation if usable else None)


def _timestamp(value: Any, key: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise AriError(f"suggestedWindow.{key} is not an RFC 3339 timestamp: {value!r}")
    return parsed


def next_check(retry_after: str | None, now: datetime) -> datetime:
    """When to ask again: the server's Retry-After (seconds or an HTTP date), kept within sane bounds."""
    wait = DEFAULT_RETRY_AFTER
    text = (retry_after or "").strip()
    if text.isdigit():
        wait = timedelta(seconds=int(text))
    elif text:
        with contextlib.suppress(TypeError, ValueError):  # a date without a zone cannot be compared: the default
            wait = parsedate_to_datetime(text) - now
    low, high = RETRY_AFTER_BOUNDS
    return now + min(max(wait, low), high)


@dataclass
class _Known:
    window: RenewalWindow | None  # None: the fetch failed, or the certificate cannot be identified
    until: datetime


class RenewalInfoClient:
    """One ACME server's renewalInfo resource, with the process-wide cache of what it said.

    No lock: two threads asking about one certificate at once cost one extra GET, and each cache entry is
    replaced whole."""

    def __init__(self, directory_url: str, *, verify: bool | str = True, timeout: float = 30) -> None:
        self.directory_url = directory_url
        self._verify = verify
        self._timeout = timeout
        self._directory: tuple[str, datetime] | None = None  # the renewalInfo URL ("" when not offered), until
        self._known: dict[str, _Known] = {}  # certificate id -> what the server said
        self._ids: dict[tuple[str, str], tuple[datetime | None, str | None]] = {}  # (vault, name) -> expiry, id
        self._logged: set[str] = set()  # failures already logged, until a fetch works again

    def may_be_due(self, vault: str, name: str, expires_on: datetime | None, now: datetime) -> bool:
        """From a listing alone (it names no version; a new version shows as a new expiry): whether the certificate
        must be read for ARI (nothing fresh is known about this version yet, or its ARI moment has come)."""
        if self._offered_base(now) == "":
            return False
        seen = self._ids.get((vault.lower(), name.lower()))
        if seen is None or seen[0] != expires_on:
            return True
        if seen[1] is None:
            return False
        known = self._known.get(seen[1])
        if known is None or known.until <= now:
            return True
        return known.window is not None and known.window.renew_at <= now

    def window(self, cert: CertificateSnapshot, now: datetime) -> RenewalWindow | None:
        """The suggested window of ``cert``'s current version, or ``None`` (fall back to the normal window)."""
        if not cert.cer:
            return None
        key = (cert.vault.lower(), cert.name.lower())
        seen = self._ids.get(key)
        if seen is None or seen[0] != cert.expires_on:
            try:
                seen = self._ids[key] = (cert.expires_on, cert_id_of(cert.cer))
            except ValueError:  # not a certificate ARI can name: the normal window applies
                seen = self._ids[key] = (cert.expires_on, None)
        return self.window_of(seen[1], cert.expires_on, now) if seen[1] is not None else None

    def window_of(self, certificate_id: str, expires_on: datetime | None, now: datetime) -> RenewalWindow | None:
        """``window`` for a certificate known by its ARI identifier (and its expiry) rather than read whole."""
        if expires_on is not None and expires_on <= now:
            return None  # RFC 9773 section 4.3: never asked about an expired certificate
        known = self._known.get(certificate_id)
        if known is not None and now < known.until:
            return known.window
        base = self._renewal_info_url(now)
        if not base:
            return None
        self._known[certificate_id] = self._fetch(f"{base}/{certificate_id}", certificate_id, now)
        return self._known[certificate_id].window

    def _fetch(self, url: str, certificate_id: str, now: datetime) -> _Known:
        import requests

        try:
            response = requests.get(url, verify=self._verify, timeout=self._timeout)
            response.raise_for_status()
            window = parse_renewal_info(certificate_id, response.json())
        except (requests.RequestException, ValueError, AriError) as exc:
            self._log_once(certificate_id, "renewalInfo %s failed (%s); the normal renewal window applies", url, exc)
            return _Known(None, now + FAILED_FETCH_RETRY)
        self._logged.discard(certificate_id)
        return _Known(window, next_check(response.headers.get("Retry-After"), now))

    def _offered_base(self, now: datetime) -> str | None:
        """The renewalInfo URL if fresh, "" if the server offers none, ``None`` if not known (or stale)."""
        known = self._directory
        return known[0] if known and now < known[1] else None

    def _renewal_info_url(self, now: datetime) -> str:
        """The directory's ``renewalInfo`` URL ("" when the server has no ARI, or its directory cannot be read)."""
        base = self._offered_base(now)
        if base is not None:
            return base
        import requests

        try:
            response = requests.get(self.directory_url, verify=self._verify, timeout=self._timeout)
            response.raise_for_status()
            directory = response.json()
        except (requests.RequestException, ValueError) as exc:
            self._log_once("directory", "ACME directory %s unreadable (%s); no renewalInfo", self.directory_url, exc)
            self._directory = ("", now + FAILED_FETCH_RETRY)
            return ""
        self._logged.discard("directory")
        url = directory.get("renewalInfo") if isinstance(directory, Mapping) else None
        self._directory = ((url.rstrip("/") if isinstance(url, str) else ""), now + DIRECTORY_LIFETIME)
        return self._directory[0]

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(message, *args)


_clients: dict[tuple[str, str, float], RenewalInfoClient] = {}
_clients_lock = threading.Lock()
_unusable_logged: set[str] = set()


def client_for(ca: Any) -> RenewalInfoClient | None:
    """The renewalInfo client of an ACME adapter (one per server for the process, so its cache is shared by the
    sweep and the renewals); ``None`` for other adapters."""
    directory_url = getattr(ca, "directory_url", None)
    if getattr(ca, "name", None) != ACME or not isinstance(directory_url, str):
        return None
    verify = getattr(ca, "_verify", True)  # the adapter's CA bundle (CERTLC_ACME_CA_BUNDLE) or the system's
    timeout = float(getattr(ca, "network_timeout", 30))
    key = (directory_url, str(verify), timeout)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = RenewalInfoClient(directory_url, verify=verify, timeout=timeout)
        return _clients[key]


def _client(ca_name: str, ca_for: Callable[[str], Any]) -> RenewalInfoClient | None:
    if ca_name.strip().lower() != ACME:
        return None
    try:
        return client_for(ca_for(ACME))
    except ConfigError as exc:  # the renewal itself reports the adapter's settings; ARI just does not apply
        if ACME not in _unusable_logged:
            _unusable_logged.add(ACME)
            log.warning("no renewalInfo: the ACME adapter cannot be built (%s)", exc)
        return None


def renewal_window(
    cert: CertificateSnapshot, ca_name: str, ca_for: Callable[[str], Any], now: datetime
) -> RenewalWindow | None:
    """The gather step: the CA's suggested window for a certificate renewed through ``ca_name``, when that CA is
    ACME and offers ARI; ``None`` otherwise, and when the fetch fails (the normal window then applies)."""
    client = _client(ca_name, ca_for)
    return client.window(cert, now) if client is not None else None


def renewal_window_of(
    certificate_id: str, expires_on: datetime | None, ca_name: str, ca_for: Callable[[str], Any], now: datetime
) -> RenewalWindow | None:
    """``renewal_window`` for a certificate known by its ARI identifier ("" when it has none), as the status
    snapshot keeps it: the same answer, from the same per-process cache, without reading the certificate."""
    client = _client(ca_name, ca_for) if certificate_id else None
    return client.window_of(certificate_id, expires_on, now) if client is not None else None


def may_be_due(
    vault: str, summary: CertificateSummary, ca_name: str, ca_for: Callable[[str], Any], now: datetime
) -> bool:
    """The sweep's pre-filter for listing entries outside the normal window: whether ARI may make it due."""
    client = _client(ca_name, ca_for)
    if client is None or not summary.enabled or not summary.has_certificate:
        return False
    return client.may_be_due(vault, summary.name, summary.expires_on, now)


def already_replaced(exc: BaseException) -> bool:
    """Whether a newOrder naming ``replaces`` was refused because that certificate already has a replacement
    order: RFC 9773's ``alreadyReplaced``, which Let's Encrypt sends with HTTP 409 (the acme client then raises
    ``ConflictError`` and drops the body; before 2025 the same 409 said ``conflict``). It happens after an
    attempt placed its order and failed; lego, getssl and acmebot then order without ``replaces``, as certlc does."""
    from acme import errors, messages

    if isinstance(exc, errors.ConflictError):
        return True
    return isinstance(exc, messages.Error) and str(exc.typ).endswith(":alreadyReplaced")


def new_order(
    client: acme_client.ClientV2, csr_pem: bytes, *, profile: str | None, replaces: str | None
) -> messages.OrderResource:
    """``ClientV2.new_order``, naming the certificate the order replaces (RFC 9773 section 5) when ``replaces`` is
    given: the CA then knows the old one may be revoked, and renewals inside its window are not rate limited."""
    if not replaces:
        return client.new_order(csr_pem, profile=profile)
    import josepy
    from acme import crypto_util, messages

    class ReplacingOrder(messages.NewOrder):
        replaces: str = josepy.field("replaces", omitempty=True)

    csr = x509.load_pem_x509_csr(csr_pem)
    dns_names, ip_addresses = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
    identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name) for name in dns_names] + [
        messages.Identifier(typ=messages.IDENTIFIER_IP, value=ip) for ip in ip_addresses
    ]
    order = ReplacingOrder(identifiers=identifiers, profile=profile or "", replaces=replaces)
    nonce_url = client.directory["newNonce"]
    try:
        response = client.net.post(client.directory["newOrder"], order, new_nonce_url=nonce_url)
    except Exception as exc:
        if not already_replaced(exc):
            raise
        log.warning(
            "the ACME server says certificate %s already has a replacement order (an earlier attempt placed it): "
            "ordering again without naming it",
            replaces,
        )
        return client.new_order(csr_pem, profile=profile)
    body = messages.Order.from_json(response.json())
    authorizations = [
        messages.AuthorizationResource(
            body=messages.Authorization.from_json(client.net.post(url, None, new_nonce_url=nonce_url).json()), uri=url
        )
        for url in body.authorizations
    ]
    return messages.OrderResource(
        body=body, uri=response.headers.get("Location"), authorizations=authorizations, csr_pem=csr_pem
    )
