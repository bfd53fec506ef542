"""An OCSP answer read and judged (RFC 6960): pure, so every way a responder can mislead has a table row.

A response counts only when signed by the certificate's issuer, or by a responder certificate included in the
response that the issuer signed for OCSP signing (id-kp-OCSPSigning) and that is valid now; only when it is about
this certificate (serial, issuer name and key hashes); and only while current (thisUpdate not ahead of our clock
by more than ``CLOCK_SKEW``, nextUpdate not passed).
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from renewal.revocation.issuer import issued_by, signed_by
from renewal.revocation.status import CLOCK_SKEW, Problem, RevocationStatus, unknown


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The DER request for ``cert``: a SHA-1 certificate id, the one every responder accepts (RFC 5019), no nonce,
    so a responder may answer from its pre-signed cache."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303
    return request.build().public_bytes(Encoding.DER)


def status_from_ocsp(
    response_der: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: datetime, url: str
) -> RevocationStatus:
    """The certificate's status by the responder at ``url``, or ``unknown`` with why it cannot be trusted."""
    source = f"OCSP {url}"
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except ValueError as exc:
        return unknown(source, Problem.MALFORMED, f"the answer is not an OCSP response ({exc})", now)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        status = response.response_status.name.lower()
        return unknown(source, Problem.REFUSED, f"the responder answered {status}", now)
    try:
        trusted = _signature_problem(response, issuer, now)
        single = _about(response, cert, issuer)
    except (ValueError, UnsupportedAlgorithm) as exc:
        return unknown(source, Problem.MALFORMED, f"the OCSP response cannot be read ({exc})", now)
    if trusted is not None:
        return unknown(source, trusted[0], trusted[1], now)
    if single is None:
        return unknown(
            source, Problem.WRONG_CERTIFICATE, f"the response is not about serial {cert.serial_number:x}", now
        )
    stale = _staleness(single.this_update_utc, single.next_update_utc, now)
    if stale:
        return unknown(source, Problem.STALE, stale, now)
    next_update = single.next_update_utc
    if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
        return RevocationStatus("good", source, None, None, now, next_update, "the responder says it is not revoked")
    if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason.value if single.revocation_reason else None
        revoked_at = single.revocation_time_utc
        detail = f"revoked on {revoked_at:%Y-%m-%d %H:%M} UTC" + (f" ({reason})" if reason else "")
        return RevocationStatus("revoked", source, reason, revoked_at, now, next_update, detail)
    return unknown(source, Problem.NOT_KNOWN, "the responder does not know this certificate", now)


def _signature_problem(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> tuple[Problem, str] | None:
    """None when the issuer or a responder it authorized signed ``response``; else the problem and why."""
    signers = [c for c in [issuer, *response.certificates] if _is_responder(response, c)]
    if not signers:
        return Problem.UNAUTHORIZED, "signed by a responder that is neither the issuer nor a certificate it includes"
    problems: list[str] = []
    for signer in signers:
        if signer != issuer:
            refused = _delegation_problem(signer, issuer, now)
            if refused:
                problems.append(refused)
                continue
        data, algorithm = response.tbs_response_bytes, response.signature_algorithm_oid
        if signed_by(signer.public_key(), response.signature, data, response.signature_hash_algorithm, algorithm):
            return None
        problems.append(f"the signature does not verify with the key of {signer.subject.rfc4514_string()}")
    delegated_only = all(signer != issuer for signer in signers)
    return (Problem.UNAUTHORIZED if delegated_only else Problem.BAD_SIGNATURE), "; ".join(problems)


def _is_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """``cert`` is the one the response's ResponderID names (by name or by the SHA-1 of its key)."""
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    return response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _delegation_problem(responder: x509.Certificate, issuer: x509.Certificate, now: datetime) -> str | None:
    name = responder.subject.rfc4514_string()
    if not issued_by(responder, issuer):
        return f"the responder certificate {name} was not issued by the certificate's issuer"
    try:
        usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        return f"the responder certificate {name} is not for OCSP signing (no id-kp-OCSPSigning)"
    if not responder.not_valid_before_utc <= now <= responder.not_valid_after_utc:
        return f"the responder certificate {name} is not valid now (until {responder.not_valid_after_utc:%Y-%m-%d})"
    return None


def _about(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse | None:
    """The single response whose certificate id is ``cert``'s, in whatever hash the responder chose."""
    for single in response.responses:
        expected = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, single.hash_algorithm).build()
        if (single.serial_number, single.issuer_name_hash, single.issuer_key_hash) == (
            expected.serial_number,
            expected.issuer_name_hash,
            expected.issuer_key_hash,
        ):
            return single
    return None


def _staleness(this_update: datetime, next_update: datetime | None, now: datetime) -> str | None:
    if this_update > now + CLOCK_SKEW:
        return f"stale: produced for {this_update:%Y-%m-%d %H:%M} UTC, ahead of this clock"
    if next_update is not None and next_update <= now:
        return f"stale: it held until {next_update:%Y-%m-%d %H:%M} UTC"
    return None
