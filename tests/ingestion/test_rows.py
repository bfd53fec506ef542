from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.rows import CertificateDetails, ListedCertificate, build_row, classify_status
from ingestion.schema import COLUMN_NAMES, COLUMN_TYPES
from renewal.canary import CanarySettings
from renewal.decide import WindowSettings
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
    row = build_row(listed, details, NOW, 30, WindowSettings(default_profile="server"))
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
        "RenewedBy": "certlc",
        "RenewalPlan": "due",
        "NextRenewal": "2024-11-28T03:20:00Z",  # a third of the lifetime before expiry: already past
        "RenewalNote": "due now: certlc renews it with CA 'local', profile 'server'",
        "Canary": False,
        "Served": "",
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


YEAR = ListedCertificate("kv1", "web", "AB01", NOW - timedelta(days=10), NOW + timedelta(days=355), True)


@pytest.mark.parametrize(
    ("enabled", "tags", "policy_issuer", "auto_renew", "renewed_by", "plan", "next_renewal"),
    [
        (True, {}, "Unknown", False, "certlc", "scheduled", "2025-10-20T20:00:00Z"),
        (True, {"certlc-last-outcome": "failed:ca_denied"}, "Unknown", False, "certlc", "failed_before", None),
        (True, {"certlc-managed": "true"}, "Self", True, "certlc", "scheduled", "2025-10-20T20:00:00Z"),
        (True, {}, "Self", True, "keyvault", "keyvault_auto_renew", None),
        (True, {}, "DigiCert", True, "keyvault", "keyvault_auto_renew", None),
        (True, {"certlc-renew": "false"}, "Unknown", False, "opted_out", "opted_out", None),
        (False, {}, "Unknown", False, "disabled", "disabled", None),
        (True, {}, "Self", False, "nobody", "uncovered", None),
        (True, {}, "Unknown", True, "certlc", "scheduled", "2025-10-20T20:00:00Z"),  # AutoRenew cannot renew Unknown
    ],
)
def test_who_renews_each_certificate(enabled, tags, policy_issuer, auto_renew, renewed_by, plan, next_renewal):
    listed = replace(YEAR, enabled=enabled, tags=tags)
    row = build_row(listed, CertificateDetails("v1", "CN=web", "CN=ca", "", policy_issuer, auto_renew), NOW)
    assert (row["RenewedBy"], row["RenewalPlan"], row["NextRenewal"]) == (renewed_by, plan, next_renewal)
    assert row["RenewalNote"] and row["Canary"] is False
    assert not enabled or row["Managed"] is (renewed_by == "certlc")  # Managed says nothing of a disabled one


def test_the_window_settings_move_the_next_renewal():
    details = CertificateDetails("v1", "CN=web", "CN=ca", "", "Unknown")
    tight = WindowSettings(lifetime_fraction=0.0, renew_before=timedelta(days=15))
    row = build_row(YEAR, details, NOW, 30, tight)
    assert (row["RenewalPlan"], row["NextRenewal"]) == ("scheduled", "2026-02-04T12:00:00Z")


def test_a_canary_is_renewed_on_its_own_schedule():
    details = CertificateDetails("v1", "CN=web", "CN=ca", "", "Unknown")
    canaries = CanarySettings(frozenset({"kv1/web"}), timedelta(days=7))
    fresh = replace(YEAR, not_before=NOW - timedelta(days=2))
    row = build_row(fresh, details, NOW, 30, WindowSettings(default_profile="server"), canaries)
    assert (row["RenewedBy"], row["RenewalPlan"], row["Canary"]) == ("certlc", "canary", True)
    assert row["NextRenewal"] == "2025-03-06T12:00:00Z"  # a week after it was issued, not months before expiry
    due = build_row(YEAR, details, NOW, 30, WindowSettings(default_profile="server"), canaries)
    assert due["RenewalPlan"] == "canary_due"
    tagged = replace(YEAR, tags={"certlc-canary": "true"})
    assert build_row(tagged, details, NOW)["Canary"] is True
    assert build_row(YEAR, details, NOW)["Canary"] is False


def test_every_value_has_its_column_type():
    details = CertificateDetails("v1", "CN=web", "CN=ca", "", "Self")
    row = build_row(YEAR, details, NOW)
    assert row["NextRenewal"] is None  # nobody renews it: no date, not an empty string
    kinds = {"string": str, "datetime": str, "int": int, "boolean": bool}
    assert [k for k, v in row.items() if v is not None and not isinstance(v, kinds[COLUMN_TYPES[k]])] == []
