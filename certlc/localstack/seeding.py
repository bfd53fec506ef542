"""Puts certificates into a vault as an operator's vault looks before certlc takes over.

``Unknown``-issuer certificates go through Key Vault's own create → CSR → merge, signed
by a stand-in for the CA that issued them before, with the validity asked for.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID


class PreviousCA:
    """The CA that issued the seeded certificates (any CA would do; certlc's CA replaces it)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Previous Issuing CA")])
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=800)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    def sign(
        self,
        csr_der: bytes,
        not_before: dt.datetime,
        not_after: dt.datetime,
        extra: tuple[x509.ExtensionType, ...] = (),
    ) -> list[bytes]:
        """Leaf and CA certificate as DER, ready for ``merge_certificate``."""
        csr = x509.load_der_x509_csr(csr_der)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        for ext in csr.extensions:
            builder = builder.add_extension(ext.value, critical=ext.critical)
        for value in extra:
            builder = builder.add_extension(value, critical=False)
        leaf = builder.sign(self._key, hashes.SHA256())
        return [leaf.public_bytes(Encoding.DER), self.certificate.public_bytes(Encoding.DER)]


def seed_certificate(
    client: Any,
    ca: PreviousCA,
    name: str,
    *,
    now: dt.datetime,
    sans: tuple[str, ...],
    issuer: str = "Unknown",
    days_left: int = 30,
    lifetime_days: int = 90,
    tags: dict[str, str] | None = None,
    extra: tuple[x509.ExtensionType, ...] = (),
    **policy: Any,
) -> Any:
    """Create ``name`` with a policy for ``sans``; ``Unknown`` ones are merged with a certificate from ``ca``."""
    from azure.keyvault.certificates import CertificatePolicy

    kv_policy = CertificatePolicy(
        issuer_name=issuer, subject=f"CN={sans[0]}", san_dns_names=list(sans), validity_in_months=12, **policy
    )
    operation = client.begin_create_certificate(name, kv_policy, tags=tags or {}, _polling_interval=0.05).result()
    if issuer != "Unknown":
        return client.get_certificate(name)
    not_after = now + dt.timedelta(days=days_left)
    chain = ca.sign(operation.csr, not_after - dt.timedelta(days=lifetime_days), not_after, extra)
    return client.merge_certificate(name, chain)
