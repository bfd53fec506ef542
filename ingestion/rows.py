"""Pure decisions of the status snapshot: status classification and row building.

Gathering (Key Vault reads) lives in ``ingestion.gather``; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ingestion.schema import STATUS_EXPIRED, STATUS_EXPIRING, STATUS_OK
from renewal import tags as T

EXPIRING_DAYS_DEFAULT = 30


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


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``: what Log Analytics parses into a datetime column."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_row(
    listed: ListedCertificate,
    details: CertificateDetails,
    snapshot_time: datetime,
    expiring_days: int = EXPIRING_DAYS_DEFAULT,
) -> dict[str, Any]:
    return {
        "TimeGenerated": iso_utc(snapshot_time),
        "KeyVault": listed.vault,
        "CertName": listed.name,
        "CertVersion": details.version,
        "CertSubject": details.subject,
        "CertIssuer": details.issuer,
        "CertThumbprint": listed.thumbprint,
        "CertSANs": details.sans,
        "CertNotBefore": iso_utc(listed.not_before),
        "CertExpiration": iso_utc(listed.expires_on),
        "DaysLeft": days_left(listed.expires_on, snapshot_time),
        "ExpiryStatus": classify_status(listed.expires_on, snapshot_time, expiring_days),
        "CertRecipient": T.tag(listed.tags, T.RECIPIENT) or "",
        "Enabled": listed.enabled,
        "Managed": T.is_managed(details.policy_issuer, listed.tags),
        "LastRenewalOutcome": T.tag(listed.tags, T.LAST_OUTCOME) or "",
        "RenewalPending": listed.renewal_pending,
    }
