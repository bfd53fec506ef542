"""Key Vault side of the snapshot: list each vault (paged) and read details of unseen versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ingestion.cache import DetailCache, cache_key
from ingestion.rows import CertificateDetails, ListedCertificate


@dataclass
class VaultListing:
    vault: str
    certificates: list[tuple[ListedCertificate, CertificateDetails]] = field(default_factory=list)
    list_pages: int = 0
    detail_reads: int = 0
    error: str = ""

    @property
    def keyvault_calls(self) -> int:
        return self.list_pages + self.detail_reads


def listed_from_properties(vault: str, props: Any) -> ListedCertificate:
    thumb = props.x509_thumbprint
    return ListedCertificate(
        vault=vault,
        name=props.name,
        thumbprint=thumb.hex().upper() if thumb else "",
        not_before=props.not_before,
        expires_on=props.expires_on,
        enabled=bool(props.enabled) if props.enabled is not None else True,
        tags=dict(props.tags or {}),
    )


def details_from_certificate(certificate: Any) -> CertificateDetails:
    from cryptography import x509

    subject = issuer = sans = ""
    if certificate.cer:
        cert = x509.load_der_x509_certificate(bytes(certificate.cer))
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
        sans = ", ".join(_san_values(cert))
    policy = certificate.policy
    return CertificateDetails(
        version=certificate.properties.version or "",
        subject=subject,
        issuer=issuer,
        sans=sans,
        policy_issuer=(policy.issuer_name or "") if policy is not None else "",
    )


def _san_values(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in ext]


def describe_error(vault: str, error: Exception) -> str:
    """One line an operator can act on; never includes tokens or headers."""
    status = getattr(error, "status_code", None)
    message = getattr(error, "message", None) or str(error)
    first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    hint = {
        401: "check the identity's access token",
        403: "grant the identity certificates list/get on the vault (Key Vault Certificates Officer)",
        404: "check the vault URL in CERTLC_VAULTS",
        429: "Key Vault is throttling; the next run retries",
    }.get(status or 0, "")
    prefix = f"{vault}: HTTP {status}" if status else f"{vault}: {type(error).__name__}"
    return f"{prefix}: {first_line}" + (f" ({hint})" if hint else "")


def list_vault(
    vault: str,
    client: Any,
    cache: DetailCache,
    seen: dict[str, CertificateDetails],
) -> VaultListing:
    """List one vault; on any failure the vault contributes no rows (no partial vault in a snapshot).

    ``seen`` collects the cache entries in use, so the saved cache stays bounded.
    """
    from azure.core.exceptions import AzureError

    listing = VaultListing(vault=vault)
    found: list[tuple[ListedCertificate, CertificateDetails]] = []
    used: dict[str, CertificateDetails] = {}
    try:
        for page in client.list_properties_of_certificates().by_page():
            listing.list_pages += 1
            for props in page:
                listed = listed_from_properties(vault, props)
                key = cache_key(vault, listed.name, listed.thumbprint)
                details = cache.get(key) if listed.thumbprint else None
                if details is None:
                    listing.detail_reads += 1
                    details = details_from_certificate(client.get_certificate(listed.name))
                used[key] = details
                found.append((listed, details))
    except (AzureError, ValueError) as error:
        listing.error = describe_error(vault, error)
        return listing
    listing.certificates = found
    seen.update(used)
    return listing


def keep_failed_vault_entries(
    cache: DetailCache, failed_vaults: set[str], seen: Mapping[str, CertificateDetails]
) -> dict[str, CertificateDetails]:
    """A vault that failed this run keeps its cached details for the next run."""
    keep = dict(seen)
    for key, value in cache.entries.items():
        if key.split("/", 1)[0] in failed_vaults:
            keep.setdefault(key, value)
    return keep
