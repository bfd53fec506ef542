"""Key Vault side of the snapshot: list each vault (paged) and read details of unseen versions.

A renewal in flight: while a manual create is pending, Key Vault may list the new version's disabled placeholder
(no certificate, no thumbprint) as the certificate. Such an entry is described by the newest good version
(enabled, with a thumbprint) from the certificate's versions list, and marked ``renewal_pending``. Where Key
Vault keeps listing the previous version instead, the pending operation is read, but only for managed
certificates inside their renewal window (the only ones certlc starts a version for).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ingestion.cache import DetailCache, cache_key
from ingestion.rows import CertificateDetails, ListedCertificate
from renewal import tags as cert_tags
from renewal.decide import has_auto_renew, template_of
from renewal.keyvault import CertificateSummary, is_placeholder

# Whether to read a listed certificate's pending operation (the listing does not say whether one exists).
OperationCheck = Callable[[ListedCertificate, CertificateDetails], bool]


@dataclass
class VaultListing:
    vault: str
    certificates: list[tuple[ListedCertificate, CertificateDetails]] = field(default_factory=list)
    list_pages: int = 0
    detail_reads: int = 0
    version_pages: int = 0  # versions lists of certificates that show a placeholder
    operation_reads: int = 0  # pending operations read (see ``OperationCheck``)
    error: str = ""

    @property
    def keyvault_calls(self) -> int:
        return self.list_pages + self.detail_reads + self.version_pages + self.operation_reads


def listed_from_properties(vault: str, props: Any, *, renewal_pending: bool = False) -> ListedCertificate:
    thumb = props.x509_thumbprint
    return ListedCertificate(
        vault=vault,
        name=props.name,
        thumbprint=thumb.hex().upper() if thumb else "",
        not_before=props.not_before,
        expires_on=props.expires_on,
        enabled=bool(props.enabled) if props.enabled is not None else True,
        tags=dict(props.tags or {}),
        renewal_pending=renewal_pending,
    )


def shows_placeholder(props: Any) -> bool:
    """A listing entry that is the disabled placeholder of a pending create, not a certificate.

    Disabled and without an x509 thumbprint: Key Vault gives a placeholder dates too, and a version an operator
    disabled keeps its certificate, and so its thumbprint (``renewal.keyvault.is_placeholder`` decides).
    """
    enabled = bool(props.enabled) if props.enabled is not None else True
    summary = CertificateSummary(
        props.name,
        props.version,
        enabled,
        props.not_before,
        props.expires_on,
        dict(props.tags or {}),
        has_certificate=props.x509_thumbprint is not None,
    )
    return is_placeholder(summary)


def newest_good_version(client: Any, name: str, listing: VaultListing) -> Any | None:
    """The newest enabled version that holds a certificate, from the versions list (one call per page)."""
    good: list[Any] = []
    for page in client.list_properties_of_certificate_versions(name).by_page():
        listing.version_pages += 1
        good.extend(p for p in page if p.enabled and p.x509_thumbprint)
    if not good:
        return None
    oldest = datetime.min.replace(tzinfo=UTC)
    # as KeyVault.current decides: created times have whole seconds and can tie, then the later expiry wins
    return max(good, key=lambda p: (p.created_on or oldest, p.expires_on or oldest))


def read_version_details(client: Any, name: str, version: str, listing: VaultListing) -> CertificateDetails:
    """A version's details; the SDK's versioned read may leave the policy out, then it is read on its own."""
    listing.detail_reads += 1
    certificate = client.get_certificate_version(name, version)
    details = details_from_certificate(certificate)
    if certificate.policy is None:
        listing.detail_reads += 1
        policy = client.get_certificate_policy(name)
        details = replace(details, policy_issuer=policy.issuer_name or "", auto_renew=has_auto_renew(policy))
    return details


def operation_in_progress(client: Any, name: str, listing: VaultListing) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    listing.operation_reads += 1
    try:
        operation = client.get_certificate_operation(name)
    except ResourceNotFoundError:
        return False
    return (operation.status or "").lower() == "inprogress"


def inside_renewal_window(now: datetime, window: Any) -> OperationCheck:
    """The ``OperationCheck`` ingestion uses: managed, enabled, and due by the renewal decision's own threshold."""
    from renewal.decide import renewal_threshold

    def check(listed: ListedCertificate, details: CertificateDetails) -> bool:
        if (
            not listed.enabled
            or listed.expires_on is None
            or not cert_tags.is_managed(details.policy_issuer, listed.tags)
        ):
            return False
        return listed.expires_on - now <= renewal_threshold(listed.not_before, listed.expires_on, listed.tags, window)

    return check


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
        ari_id=_ari_id(bytes(certificate.cer)) if certificate.cer else "",
        template=template_of(bytes(certificate.cer) if certificate.cer else None) or "",
        version=certificate.properties.version or "",
        subject=subject,
        issuer=issuer,
        sans=sans,
        policy_issuer=(policy.issuer_name or "") if policy is not None else "",
        auto_renew=has_auto_renew(policy),
    )


def _ari_id(cer: bytes) -> str:
    from renewal.ca.acme_ari import cert_id_of

    try:
        return cert_id_of(cer) or ""
    except ValueError:  # not a certificate ARI can name
        return ""


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
    check_operation: OperationCheck | None = None,
) -> VaultListing:
    """List one vault; on any failure the vault contributes no rows (no partial vault in a snapshot).

    ``seen`` collects the cache entries in use, so the saved cache stays bounded. Key Vault calls: the list
    pages, a read per version not cached, and for a renewal in flight the versions list (placeholder listed)
    or the pending operation (``check_operation`` says for which certificates).
    """
    from azure.core.exceptions import AzureError

    listing = VaultListing(vault=vault)
    found: list[tuple[ListedCertificate, CertificateDetails]] = []
    used: dict[str, CertificateDetails] = {}
    try:
        for page in client.list_properties_of_certificates().by_page():
            listing.list_pages += 1
            for props in page:
                placeholder = shows_placeholder(props)
                good = newest_good_version(client, props.name, listing) if placeholder else None
                if good is not None:
                    listed = listed_from_properties(vault, good, renewal_pending=True)
                elif placeholder:  # a first version still pending: nothing issued yet
                    listed = replace(
                        listed_from_properties(vault, props, renewal_pending=True), not_before=None, expires_on=None
                    )
                else:
                    listed = listed_from_properties(vault, props)
                key = cache_key(vault, listed.name, listed.thumbprint)
                details = cache.get(key) if listed.thumbprint else None
                if details is None and good is not None:
                    details = read_version_details(client, listed.name, good.version, listing)
                elif details is None:
                    listing.detail_reads += 1
                    details = details_from_certificate(client.get_certificate(listed.name))
                ask = not listed.renewal_pending and check_operation is not None and check_operation(listed, details)
                if ask and operation_in_progress(client, listed.name, listing):
                    listed = replace(listed, renewal_pending=True)
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
