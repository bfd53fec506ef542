"""Small, pure readings of certificates and CSRs used by the decisions and checks."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# AD CS template extensions: v2 template (OID + versions) and v1 template name (BMPString).
TEMPLATE_OID_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.311.21.7")
TEMPLATE_NAME_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2")
UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


@dataclass(frozen=True)
class KeySpec:
    kty: str  # "RSA" or "EC"
    size: int | None = None
    curve: str | None = None


def load_certificate(data: bytes) -> x509.Certificate:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_csr(data)
    return x509.load_der_x509_csr(data)


def csr_to_pem(csr_der: bytes) -> bytes:
    return load_csr(csr_der).public_bytes(serialization.Encoding.PEM)


def der_to_pem(cert_der: bytes) -> str:
    """A certificate as Key Vault gives it (``cer``, DER) in the PEM form CAs take."""
    return load_certificate(cert_der).public_bytes(serialization.Encoding.PEM).decode()


def pem_chain_to_der(chain_pem: tuple[str, ...] | list[str]) -> list[bytes]:
    return [load_certificate(pem.encode()).public_bytes(serialization.Encoding.DER) for pem in chain_pem]


def public_key_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def thumbprint(cert_der: bytes) -> str:
    """Key Vault's thumbprint: SHA-1 of the DER, upper-case hex, as the portal and the CLI show it."""
    return hashlib.sha1(cert_der, usedforsecurity=False).hexdigest().upper()


def same_public_key(cert_der: bytes, csr_der: bytes) -> bool:
    return public_key_der(load_certificate(cert_der).public_key()) == public_key_der(load_csr(csr_der).public_key())


def same_key(cert_der: bytes, other_der: bytes) -> bool:
    """Whether two certificates carry the same public key."""
    return public_key_der(load_certificate(cert_der).public_key()) == public_key_der(
        load_certificate(other_der).public_key()
    )


def key_spec(public_key: object) -> KeySpec:
    if isinstance(public_key, rsa.RSAPublicKey):
        return KeySpec("RSA", size=public_key.key_size)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(public_key.curve.name)
        return KeySpec("EC", curve=curve or public_key.curve.name)
    return KeySpec(type(public_key).__name__)


def subject_attributes(subject: str | x509.Name) -> frozenset[tuple[str, str]]:
    """Subject as an order-free set of (attribute, value): Key Vault writes "CN=a, O=b"."""
    if isinstance(subject, x509.Name):
        return frozenset((a.oid.dotted_string, str(a.value)) for a in subject)
    parts = [p.strip() for p in re.split(r"(?<!\\),", subject) if p.strip()]
    name = x509.Name.from_rfc4514_string(",".join(parts)) if parts else x509.Name([])
    return subject_attributes(name)


@dataclass(frozen=True)
class AltNames:
    dns: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    upns: frozenset[str] = frozenset()


def alt_names(extensions: x509.Extensions) -> AltNames:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return AltNames()
    upns = frozenset(_der_utf8(n.value) for n in san.get_values_for_type(x509.OtherName) if n.type_id == UPN_OID)
    return AltNames(
        dns=frozenset(d.lower() for d in san.get_values_for_type(x509.DNSName)),
        emails=frozenset(e.lower() for e in san.get_values_for_type(x509.RFC822Name)),
        upns=upns,
    )


def _der_utf8(value: bytes) -> str:
    # OtherName values are DER: tag, length, then the string (UPNs are UTF8String).
    if len(value) > 2 and value[0] == 0x0C and value[1] < 0x80:
        return value[2 : 2 + value[1]].decode("utf-8", "replace")
    return value.hex()


def adcs_template(cert: x509.Certificate) -> str | None:
    """The AD CS template a certificate was issued from: the v2 OID first, else the v1 name."""
    for ext in cert.extensions:
        if ext.oid == TEMPLATE_OID_EXTENSION:
            oid = _template_oid(ext.value)
            if oid:
                return oid
    for ext in cert.extensions:
        if ext.oid == TEMPLATE_NAME_EXTENSION:
            name = _template_name(ext.value)
            if name:
                return name
    return None


def _raw(value: object) -> bytes:
    return value.value if isinstance(value, x509.UnrecognizedExtension) else b""


def _template_oid(value: object) -> str | None:
    """cryptography decodes the v2 template extension itself."""
    return value.template_id.dotted_string if isinstance(value, x509.MSCertificateTemplate) else None


def _template_name(value: object) -> str | None:
    # BMPString (tag 0x1E) holding UTF-16BE, as AD CS writes it; be lenient with UTF8String.
    data = _raw(value)
    if len(data) < 2:
        return None
    tag, length, body = data[0], data[1], data[2:]
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(body[:n], "big")
        body = body[n:]
    body = body[:length]
    if tag == 0x1E:
        return body.decode("utf-16-be", "replace") or None
    if tag in (0x0C, 0x13, 0x16):
        return body.decode("utf-8", "replace") or None
    return None
