from datetime import UTC, datetime, timedelta

import pytest

from ingestion.rows import CertificateDetails, ListedCertificate, build_row, classify_status
from ingestion.schema import COLUMN_NAMES
from renewal.tags import is_managed

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expires", "days", "status"),
    [
        (NOW - timedelta(seconds=1), 30, "Expired"),
        (NOW, 30, "Expired"),
        (NOW + timedelta(days=30), 30, "ExpiringSoon"),
        (NOW + timedelta(days=30, seconds=1), 30, "NotExpired"),
        (NOW + timedelta(days=10), 5, "NotExpired"),
        (NOW + timedelta(days=10), 0, "NotExpired"),
        (None, 30, "NotExpired"),
    ],
)
def test_classify_status(expires, days, status):
    assert classify_status(expires, NOW, days) == status


@pytest.mark.parametrize(
    ("issuer", "tags", "managed"),
    [
        ("Unknown", {}, True),
        ("unknown", {"certlc-renew": "FALSE"}, False),
        ("Self", {}, False),
        ("Self", {"CertLC-Managed": "true"}, True),
        ("DigiCert", {"certlc-managed": "yes"}, True),  # the same yes/true/1 the renewal decision accepts
        ("DigiCert", {"certlc-managed": "maybe"}, False),
        ("", {}, False),
    ],
)
def test_is_managed(issuer, tags, managed):
    assert is_managed(issuer, tags) is managed


def test_build_row_has_every_column_and_exact_values():
    listed = ListedCertificate(
        vault="kv1",
        name="web",
        thumbprint="AB01",
        not_before=NOW - timedelta(days=300),
        expires_on=NOW + timedelta(days=9, hours=23),
        enabled=True,
        tags={"RECIPIENT": "ops@example.com", "certlc-last-outcome": "Renewed"},
    )
    details = CertificateDetails("v1", "CN=web", "CN=Issuing CA", "web.example.com", "Unknown")
    row = build_row(listed, details, NOW, 30)
    assert tuple(row) == COLUMN_NAMES
    assert row == {
        "TimeGenerated": "2025-03-01T12:00:00Z",
        "KeyVault": "kv1",
        "CertName": "web",
        "CertVersion": "v1",
        "CertSubject": "CN=web",
        "CertIssuer": "CN=Issuing CA",
        "CertThumbprint": "AB01",
        "CertSANs": "web.example.com",
        "CertNotBefore": "2024-05-05T12:00:00Z",
        "CertExpiration": "2025-03-11T11:00:00Z",
        "DaysLeft": 9,
        "ExpiryStatus": "ExpiringSoon",
        "CertRecipient": "ops@example.com",
        "Enabled": True,
        "Managed": True,
        "LastRenewalOutcome": "Renewed",
        "RenewalPending": False,
    }


def test_expired_row_counts_days_negative():
    listed = ListedCertificate("kv1", "old", "CD", None, NOW - timedelta(hours=1), False)
    row = build_row(listed, CertificateDetails("v", "", "", "", "Self"), NOW)
    assert (row["DaysLeft"], row["ExpiryStatus"], row["Enabled"], row["Managed"]) == (-1, "Expired", False, False)
    assert row["CertRecipient"] == "" and row["LastRenewalOutcome"] == ""


def test_a_pending_renewal_row_carries_the_flag_and_the_good_versions_dates():
    listed = ListedCertificate("kv1", "web", "AB01", NOW - timedelta(days=300), NOW + timedelta(days=3), True, {}, True)
    row = build_row(listed, CertificateDetails("v1", "CN=web", "CN=ca", "", "Unknown"), NOW)
    shown = (row["RenewalPending"], row["Enabled"], row["DaysLeft"], row["ExpiryStatus"])
    assert shown == (True, True, 3, "ExpiringSoon")
    assert row["CertExpiration"] == "2025-03-04T12:00:00Z"
