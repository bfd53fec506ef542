"""Pure decisions of the status snapshot: status classification and row building.

Gathering (Key Vault reads) lives in ``ingestion.gather``; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ingestion.schema import STATUS_EXPIRED, STATUS_EXPIRING, STATUS_OK
from renewal import tags as cert_tags
from renewal.canary import CanarySettings, canary_every
from renewal.clock import iso_utc
from renewal.decide import Facts, WindowSettings, plan

if TYPE_CHECKING:
    from renewal.ca.acme_ari import RenewalWindow

EXPIRING_DAYS_DEFAULT = 30
DEFAULT_WINDOW = WindowSettings()
NO_CANARIES = CanarySettings()


@dataclass(frozen=True)
class ListedCertificate:
    """What one item of Key Vault's certificate list says (no extra call needed).

    While a renewal is pending and Key Vault lists the new version's placeholder, these are the newest good
    version's values (from the versions list) and ``renewal_pending`` is set.
    """

    vault: str
    name: str
    thumbprint: str  # upper-case hex
    not_before: datetime | None
    expires_on: datetime | None
    enabled: bool
    tags: Mapping[str, str] = field(default_factory=dict)
    renewal_pending: bool = False


@dataclass(frozen=True)
class CertificateDetails:
    """What only the certificate itself says; read once per version and cached."""

    version: str
    subject: str
    issuer: str
    sans: str
    policy_issuer: str  # the policy's issuer name: "Unknown" for non-integrated CAs
    auto_renew: bool = False  # the policy has an AutoRenew lifetime action (Key Vault renews it itself)
    ari_id: str = ""  # its ACME Renewal Information identifier (RFC 9773), "" when it names no issuer key
    template: str = ""  # the AD CS template it names, "" when none: a renewal's profile of last resort
    read_weight: int = 1  # what Key Vault weighs each read of it by (its key: ``renewal.pacing.limits.KeyKind``)


def classify_status(expires_on: datetime | None, now: datetime, expiring_days: int) -> str:
    """A certificate with no expiry never expires."""
    if expires_on is None:
        return STATUS_OK
    if expires_on <= now:
        return STATUS_EXPIRED
    if expires_on <= now + timedelta(days=expiring_days):
        return STATUS_EXPIRING
    return STATUS_OK


def days_left(expires_on: datetime | None, now: datetime) -> int | None:
    if expires_on is None:
        return None
    return math.floor((expires_on - now).total_seconds() / 86400)


def facts_of_listed(
    listed: ListedCertificate,
    details: CertificateDetails,
    canary: CanarySettings,
) -> Facts:
    """The decision's facts from what the listing and the cached details say (no extra Key Vault call)."""
    return Facts(
        vault=listed.vault,
        name=listed.name,
        version=details.version,
        enabled=listed.enabled,
        not_before=listed.not_before,
        expires_on=listed.expires_on,
        tags=listed.tags,
        policy_issuer=details.policy_issuer,
        auto_renew=details.auto_renew,
        canary_every=canary_every(canary, listed.vault, listed.name, listed.tags),
        template=details.template or None,
    )


def build_row(
    listed: ListedCertificate,
    details: CertificateDetails,
    snapshot_time: datetime,
    expiring_days: int = EXPIRING_DAYS_DEFAULT,
    window: WindowSettings = DEFAULT_WINDOW,
    canary: CanarySettings = NO_CANARIES,
    renewal_window: RenewalWindow | None = None,
    served: str = "",
) -> dict[str, Any]:
    """One status row; what happens next is the one decision (``renewal.decide.plan``), as the sweep and
    ``certlc status`` take it (with the ACME CA's suggested window, as the sweep uses it, when the caller gathered
    one)."""
    facts = facts_of_listed(listed, details, canary)
    decided = plan(facts, snapshot_time, window, renewal_window)
    return {
        "TimeGenerated": iso_utc(snapshot_time),
        "KeyVault": listed.vault,
        "CertName": listed.name,
        "CertVersion": details.version,
        "CertSubject": details.subject,
        "CertIssuer": details.issuer,
        "CertThumbprint": listed.thumbprint,
        "CertSANs": details.sans,
        "CertNotBefore": iso_utc(listed.not_before) if listed.not_before else None,
        "CertExpiration": iso_utc(listed.expires_on) if listed.expires_on else None,
        "DaysLeft": days_left(listed.expires_on, snapshot_time),
        "ExpiryStatus": classify_status(listed.expires_on, snapshot_time, expiring_days),
        "CertRecipient": cert_tags.tag(listed.tags, cert_tags.RECIPIENT) or "",
        "Enabled": listed.enabled,
        "Managed": cert_tags.is_managed(details.policy_issuer, listed.tags),
        "LastRenewalOutcome": cert_tags.tag(listed.tags, cert_tags.LAST_OUTCOME) or "",
        "RenewalPending": listed.renewal_pending,
        "RenewedBy": decided.renewed_by,
        "RenewalPlan": str(decided.reason),
        "NextRenewal": iso_utc(decided.next_renewal) if decided.next_renewal else None,
        "RenewalNote": decided.message,
        "Canary": facts.canary_every is not None,
        "Served": served,
    }
