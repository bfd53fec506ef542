"""A CRL read and judged (RFC 5280 5.): pure, like ``renewal.revocation.ocsp``.

A CRL counts only when it is the certificate's issuer's (same name, signature verified with the issuer's key),
complete (not a delta CRL, not one partitioned by reasons or to CA or attribute certificates, not indirect) and
current (nextUpdate not passed).
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from renewal.revocation.status import CLOCK_SKEW, Problem, RevocationStatus, unknown


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """DER or PEM, as CAs publish either; raises ValueError when it is neither."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def status_from_crl(
    crl: bytes | x509.CertificateRevocationList,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    url: str,
) -> RevocationStatus:
    """The certificate's status by the CRL fetched from ``url`` (its bytes, or loaded once and kept for every
    certificate it covers), or ``unknown`` with why it cannot be trusted."""
    source = f"CRL {url}"
    try:
        loaded = crl if isinstance(crl, x509.CertificateRevocationList) else load_crl(crl)
        problem = _problem(loaded, cert, issuer, now)
        entry = loaded.get_revoked_certificate_by_serial_number(cert.serial_number)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return unknown(source, Problem.MALFORMED, f"the answer is not a CRL this can read ({exc})", now)
    if problem is not None:
        return unknown(source, problem[0], problem[1], now)
    next_update = loaded.next_update_utc
    if entry is None:
        return RevocationStatus("good", source, None, None, now, next_update, "not on its issuer's CRL")
    reason = _reason(entry)
    revoked_at = entry.revocation_date_utc
    detail = f"revoked on {revoked_at:%Y-%m-%d %H:%M} UTC" + (f" ({reason})" if reason else "")
    return RevocationStatus("revoked", source, reason, revoked_at, now, next_update, detail)


def _problem(
    crl: x509.CertificateRevocationList, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
) -> tuple[Problem, str] | None:
    if crl.issuer != cert.issuer:
        return (
            Problem.WRONG_ISSUER,
            f"the CRL is {crl.issuer.rfc4514_string()}'s, the certificate's issuer is {cert.issuer.rfc4514_string()}",
        )
    if not crl.is_signature_valid(issuer.public_key()):
        return (
            Problem.BAD_SIGNATURE,
            f"the CRL's signature does not verify with {issuer.subject.rfc4514_string()}'s key",
        )
    partial = _partial(crl)
    if partial:
        return Problem.PARTIAL, partial
    if crl.last_update_utc > now + CLOCK_SKEW:
        return Problem.STALE, f"stale: issued for {crl.last_update_utc:%Y-%m-%d %H:%M} UTC, ahead of this clock"
    if crl.next_update_utc is not None and crl.next_update_utc <= now:
        return Problem.STALE, f"stale: it held until {crl.next_update_utc:%Y-%m-%d %H:%M} UTC"
    return None


def _partial(crl: x509.CertificateRevocationList) -> str | None:
    """Why this CRL alone cannot say a leaf is not revoked, or None when it is complete for leaves."""
    extensions = {extension.oid: extension.value for extension in crl.extensions}
    if x509.DeltaCRLIndicator.oid in extensions:
        return "a delta CRL: it lists only what changed since its base CRL"
    point = extensions.get(x509.IssuingDistributionPoint.oid)
    if isinstance(point, x509.IssuingDistributionPoint) and (
        point.indirect_crl
        or point.only_some_reasons
        or point.only_contains_ca_certs
        or point.only_contains_attribute_certs
    ):
        return "a partitioned or indirect CRL (Issuing Distribution Point): it does not cover every revocation"
    return None


def _reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except x509.ExtensionNotFound:
        return None
