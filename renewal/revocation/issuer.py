"""Finding a certificate's issuer and checking signatures: OCSP responses and CRLs are only as good as these.

Key Vault keeps the leaf alone, so the issuer comes from the CA certificates the caller knows (its CA adapter's
root and intermediates) or from the leaf's AIA caIssuers URL; either way it must have the leaf's issuer name and
a key that verifies the leaf's signature.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import SignatureAlgorithmOID

from renewal.x509info import load_certificate


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer``'s name is ``cert``'s issuer name and its key verifies ``cert``'s signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def pick_issuer(cert: x509.Certificate, candidates: Iterable[x509.Certificate]) -> x509.Certificate | None:
    """The candidate that issued ``cert``: a same-named CA with another key (a re-keyed root) is not it."""
    return next((candidate for candidate in candidates if issued_by(cert, candidate)), None)


def certificates_in(body: bytes) -> list[x509.Certificate]:
    """The certificates in a caIssuers body: DER or PEM (one or more), or a PKCS#7 bundle (.p7c) in DER or PEM.

    Raises ValueError when it is none of these."""
    text = body.lstrip()
    if text.startswith(b"-----BEGIN"):
        if b"-----BEGIN CERTIFICATE-----" in text:
            return x509.load_pem_x509_certificates(text)
        return pkcs7.load_pem_pkcs7_certificates(text)  # -----BEGIN PKCS7----- or -----BEGIN CMS-----
    try:
        return [load_certificate(body)]
    except ValueError:
        return pkcs7.load_der_pkcs7_certificates(body)


def signed_by(
    public_key: object,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
    algorithm: x509.ObjectIdentifier,
) -> bool:
    """Whether ``public_key`` made ``signature`` over ``data``, for the key types CAs use.

    RSASSA-PSS is verified with MGF1 over the same hash and any salt length: OCSP responses do not expose the
    PSS parameters, and these are what every issuer uses."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and hash_algorithm is not None:
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO)
                if algorithm == SignatureAlgorithmOID.RSASSA_PSS
                else padding.PKCS1v15()
            )
            public_key.verify(signature, data, pad, hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and hash_algorithm is not None:
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, dsa.DSAPublicKey) and hash_algorithm is not None:
            public_key.verify(signature, data, hash_algorithm)
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True
