"""Puts certificates into a vault as an operator's vault looks before certlc takes over.

``Unknown``-issuer certificates go through Key Vault's own create → CSR → merge, signed
by a stand-in for the CA that issued them before, with the validity asked for. ``SAMPLES`` is what
``certlc local up`` seeds: one certificate for each answer to "who renews it".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    validity_in_months: int = 12,
    **policy: Any,
) -> Any:
    """Create ``name`` with a policy for ``sans``; ``Unknown`` ones are merged with a certificate from ``ca``.

    Key Vault issues the others itself, valid from now for ``validity_in_months``."""
    from azure.keyvault.certificates import CertificatePolicy

    kv_policy = CertificatePolicy(
        issuer_name=issuer,
        subject=f"CN={sans[0]}",
        san_dns_names=list(sans),
        validity_in_months=validity_in_months,
        **policy,
    )
    operation = client.begin_create_certificate(name, kv_policy, tags=tags or {}, _polling_interval=0.05).result()
    if issuer != "Unknown":
        return client.get_certificate(name)
    not_after = now + dt.timedelta(days=days_left)
    chain = ca.sign(operation.csr, not_after - dt.timedelta(days=lifetime_days), not_after, extra)
    return client.merge_certificate(name, chain)


@dataclass(frozen=True)
class Sample:
    """A certificate ``certlc local up`` seeds, and who renews it (``renewal.outlook``'s ``renewed_by``)."""

    name: str
    issuer: str  # "Unknown" (a CA Key Vault does not integrate with) or "Self"
    days_left: int  # Unknown only: Self ones are issued now for a year
    lifetime_days: int
    renewed_by: str
    tags: dict[str, str] = field(default_factory=dict)
    auto_renew: bool = True  # Self only: False leaves Key Vault's policy with EmailContacts alone
    sans: tuple[str, ...] = ()
    extensions: tuple[x509.ExtensionType, ...] = ()  # what the previous CA added (an AD CS template, say)


SAMPLES = (
    Sample("shop-expiring", "Unknown", 20, 90, "certlc", {"Recipient": "shop@example.com"}, sans=("shop.example.com",)),
    Sample("api-healthy", "Unknown", 300, 365, "certlc", sans=("api.example.com",)),
    Sample("portal-selfsigned", "Self", 0, 0, "keyvault", sans=("portal.example.com",)),
    Sample("legacy-optout", "Unknown", 60, 365, "opted_out", {"certlc-renew": "false"}, sans=("legacy.example.com",)),
    Sample("intranet-unwatched", "Self", 0, 0, "nobody", auto_renew=False, sans=("intranet.example.com",)),
)


class Seedable(Protocol):
    """What seeding needs of a certificate to seed: a ``Sample``, or one of the demo's."""

    name: str
    issuer: str
    days_left: int
    lifetime_days: int
    tags: dict[str, str]
    auto_renew: bool
    sans: tuple[str, ...]
    extensions: tuple[x509.ExtensionType, ...]


def seed_missing(client: Any, samples: Iterable[Seedable], now: dt.datetime) -> list[str]:
    """Seed the samples the vault does not hold yet (a restarted stack keeps its vault); the names seeded."""
    present = {p.name.lower() for p in client.list_properties_of_certificates()}
    ca = PreviousCA()
    seeded = []
    for sample in samples:
        if sample.name.lower() in present:
            continue
        seed_sample(client, ca, sample, now)
        seeded.append(sample.name)
    return seeded


def seed_sample(client: Any, ca: PreviousCA, sample: Seedable, now: dt.datetime) -> Any:
    """Seed one sample; the certificate Key Vault returns (its version is the one seeded)."""
    from azure.keyvault.certificates import CertificatePolicyAction, LifetimeAction

    email_only = LifetimeAction(CertificatePolicyAction.email_contacts, lifetime_percentage=80)
    return seed_certificate(
        client,
        ca,
        sample.name,
        now=now,
        sans=sample.sans,
        issuer=sample.issuer,
        days_left=sample.days_left,
        lifetime_days=sample.lifetime_days,
        tags=sample.tags,
        lifetime_actions=None if sample.auto_renew else [email_only],
        extra=sample.extensions,
    )


def lifetime_for(days_left: int) -> int:
    """A lifetime that puts ``not_before`` at least 30 days back, so a certificate added "valid N more days" is
    valid now (or expired, for negative N), and 90 days for the short-lived ones CAs issue today."""
    return max(90, days_left + 30)
