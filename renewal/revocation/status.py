"""What a revocation check answers, and where a certificate says to ask: pure, in the shape of ``renewal.decide``.

An answer is ``good`` or ``revoked`` only when a response its CA signed says so; everything else (nothing to ask,
no issuer, a refused, forged, stale or unreachable answer) is ``unknown`` with a stable ``problem`` and a ``detail``
a person reads in ``certlc status``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

State = Literal["good", "revoked", "unknown"]
SourceKind = Literal["ocsp", "crl"]
# How far ahead of our clock a responder's thisUpdate may be: clocks differ by seconds, not minutes.
CLOCK_SKEW = timedelta(minutes=5)


class Problem(StrEnum):
    """Why an answer is ``unknown``: the snapshot, alerts and tests key on these, the detail says the rest."""

    NO_SOURCE = "no_source"  # the certificate names no http OCSP responder and no http CRL
    NO_ISSUER = "no_issuer"  # the issuer's certificate, needed to verify any answer, was not found
    UNREACHABLE = "unreachable"  # the network failed: timeout, refused, HTTP error, too large
    MALFORMED = "malformed"  # the body is not an OCSP response or CRL
    REFUSED = "refused"  # the OCSP responder answered unauthorized, tryLater, internalError…
    UNAUTHORIZED = "unauthorized"  # signed by someone the issuer did not authorize
    BAD_SIGNATURE = "bad_signature"  # the signature does not verify with the key it claims
    WRONG_CERTIFICATE = "wrong_certificate"  # the OCSP response is about another certificate
    WRONG_ISSUER = "wrong_issuer"  # the CRL is another CA's
    PARTIAL = "partial"  # a delta or partitioned CRL: it cannot say "good" on its own
    STALE = "stale"  # past its nextUpdate, or from the future
    NOT_KNOWN = "not_known"  # the responder answered "unknown": it does not know this certificate
    LIMIT = "limit"  # not checked this sweep: the sweep's network checks are spent


@dataclass(frozen=True)
class Source:
    """One place to ask: an OCSP responder or a CRL, named by the certificate itself."""

    kind: SourceKind
    url: str

    def __str__(self) -> str:
        return f"{self.kind.upper()} {self.url}"


@dataclass(frozen=True)
class RevocationStatus:
    state: State
    source: str  # where the answer came from, as a person reads it: "OCSP http://…", "CRL http://…", "none: …"
    reason: str | None  # RFC 5280's reason as x509.ReasonFlags' value ("keyCompromise"), when revoked with one
    revoked_at: datetime | None
    checked_at: datetime  # when the answer was fetched: a cached answer keeps its time
    next_update: datetime | None  # until when the answer holds; None: ask again next time
    detail: str
    problem: Problem | None = None  # why it is unknown; None when good or revoked


def unknown(source: str, problem: Problem, detail: str, now: datetime) -> RevocationStatus:
    return RevocationStatus("unknown", source, None, None, now, None, detail, problem)


def named_sources(cert: x509.Certificate) -> list[Source]:
    """Every OCSP responder (AIA id-ad-ocsp) then every CRL (CDP full names) the certificate names, any scheme."""
    ocsp = [
        Source("ocsp", d.access_location.value)
        for d in _extension(cert, x509.AuthorityInformationAccess) or ()
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]
    crl = [
        Source("crl", name.value)
        for point in _extension(cert, x509.CRLDistributionPoints) or ()
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    ]
    return ocsp + crl


def where_to_ask(cert: x509.Certificate) -> list[Source]:
    """The http sources, OCSP first (one small signed answer), then the CRLs.

    https is refused, as RFC 5280 (4.2.1.13, 4.2.2.1) and RFC 6960 expect: the answer is signed by the CA, so TLS
    adds nothing, and verifying the server's TLS certificate would itself need a revocation check (and a trust
    bundle for a private CA's servers). ldap:// (AD CS's first CDP) needs an LDAP bind certlc does not make here;
    AD CS publishes an http CDP next to it, which is used.
    """
    return [source for source in named_sources(cert) if is_http(source.url)]


def ca_issuer_urls(cert: x509.Certificate) -> list[str]:
    """Where the certificate says its issuer's certificate is (AIA caIssuers), http only as for ``where_to_ask``."""
    return [
        d.access_location.value
        for d in _extension(cert, x509.AuthorityInformationAccess) or ()
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
        and is_http(d.access_location.value)
    ]


def is_http(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "http"


def nothing_to_ask(cert: x509.Certificate, now: datetime) -> RevocationStatus:
    """The answer for a certificate with no http source, naming the sources it has that certlc does not use."""
    others = [str(source) for source in named_sources(cert)]
    if not others:
        return unknown(
            "none: the certificate names no OCSP responder and no CRL",
            Problem.NO_SOURCE,
            "its CA gives no way to check revocation (no AIA OCSP, no CRL Distribution Points)",
            now,
        )
    return unknown(
        "none: the certificate names no http OCSP responder or CRL",
        Problem.NO_SOURCE,
        f"it names only {', '.join(others)}; certlc fetches http only (RFC 5280: the answers are signed, "
        "so https adds nothing, and ldap needs a directory bind)",
        now,
    )


def none_answered(failures: Sequence[RevocationStatus], now: datetime) -> RevocationStatus:
    """One ``unknown`` from every source's ``unknown``, each reason kept: the first problem is the one shown."""
    return unknown(
        "; ".join(f.source for f in failures),
        failures[0].problem or Problem.UNREACHABLE,
        "; ".join(f"{f.source}: {f.detail}" for f in failures),
        now,
    )


def _extension(cert: x509.Certificate, kind: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension: as good as absent for finding sources
        return None
