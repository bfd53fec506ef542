"""What a certificate's secret holds, split into the pieces a server's files need."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certlc.sync.errors import SyncConfigError, SyncError
from renewal.x509info import thumbprint as der_thumbprint

PEM_CONTENT_TYPE = "application/x-pem-file"
PKCS12_CONTENT_TYPE = "application/x-pkcs12"
_PEM_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----.+?-----END (?:[A-Z]+ )?PRIVATE KEY-----", re.S)


def thumbprint(certificate: x509.Certificate) -> str:
    """Key Vault's thumbprint of a loaded certificate."""
    return der_thumbprint(certificate.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class Bundle:
    """One certificate version: the leaf, the issuing chain (no self-signed root) and the key."""

    version: str
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key_pem: bytes

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.leaf)

    def __repr__(self) -> str:  # the key must never reach a log line
        return f"Bundle(version={self.version!r}, thumbprint={self.thumbprint!r})"


def _pem(certificates: tuple[x509.Certificate, ...]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def cert_pem(bundle: Bundle) -> bytes:
    return _pem((bundle.leaf,))


def chain_pem(bundle: Bundle) -> bytes:
    return _pem(bundle.chain)


def fullchain_pem(bundle: Bundle) -> bytes:
    return _pem((bundle.leaf, *bundle.chain))


def _issuing_chain(leaf: x509.Certificate, others: list[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """The intermediates from the leaf's issuer upwards; roots are left out (clients already hold them)."""
    chain: list[x509.Certificate] = []
    current = leaf
    while current.issuer != current.subject:
        issuer = next((c for c in others if c.subject == current.issuer and c not in chain), None)
        if issuer is None or issuer.issuer == issuer.subject:
            break
        chain.append(issuer)
        current = issuer
    return tuple(chain)


def _key_and_certificates(value: str, content_type: str) -> tuple[object, list[x509.Certificate]]:
    if content_type == PEM_CONTENT_TYPE:
        data = value.encode()
        match = _PEM_KEY.search(data)
        key = serialization.load_pem_private_key(match.group(0), password=None) if match else None
        return key, x509.load_pem_x509_certificates(data)
    if content_type == PKCS12_CONTENT_TYPE:
        key, leaf, extra = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
        return key, [c for c in (leaf, *extra) if c is not None]
    raise SyncError(
        f"the secret's content type is {content_type!r}: expected {PEM_CONTENT_TYPE} or {PKCS12_CONTENT_TYPE}"
    )


def parse_secret(value: str, content_type: str, version: str, name: str) -> Bundle:
    """Split a certificate's secret (PFX or PEM) into leaf, chain and the key as PKCS#8 PEM."""
    try:
        key, certificates = _key_and_certificates(value, content_type)
    except ValueError as exc:
        raise SyncError(f"{name}: the secret is not a readable {content_type}: {exc}") from exc
    if key is None:
        raise SyncConfigError(
            f"{name}: the secret has no private key; the certificate policy must have exportable: true to sync it"
        )
    public = key.public_key()  # type: ignore[attr-defined]
    leaf = next((c for c in certificates if c.public_key() == public), None)
    if leaf is None:
        raise SyncError(f"{name}: no certificate in the secret matches its private key")
    key_pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    others = [c for c in certificates if c is not leaf]
    return Bundle(version=version, leaf=leaf, chain=_issuing_chain(leaf, others), key_pem=key_pem)
