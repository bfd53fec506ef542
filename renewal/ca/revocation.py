"""What every adapter's ``revoke`` reads from the certificate and the reason before it asks its CA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from renewal.ca.base import REVOCATION_REASONS, CaError

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class RevocationTarget:
    """The leaf to revoke, its serial as certlc names it (lower-case hex) and the RFC 5280 reason code."""

    certificate: x509.Certificate
    serial: str
    reason: str
    code: int


def revocation_target(certificate_pem: str, reason: str) -> RevocationTarget:
    """Checked before any CA is asked, so a typo in the reason or a wrong file never reaches it."""
    from cryptography import x509

    code = reason_code(reason)
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as exc:
        raise CaError(f"the certificate to revoke is not a PEM certificate: {exc}") from exc
    return RevocationTarget(certificate, serial_hex(certificate.serial_number), reason, code)


def reason_code(reason: str) -> int:
    """The RFC 5280 code of one of ``REVOCATION_REASONS``; any other name is refused, naming those."""
    if reason not in REVOCATION_REASONS:
        raise CaError(f"revocation reason {reason!r} is not one of: {', '.join(REVOCATION_REASONS)}")
    return REVOCATION_REASONS[reason]


def serial_hex(serial: int) -> str:
    """Lower-case hex without separators or leading zeros: how certlc names a serial in every result."""
    return format(serial, "x")
