"""``plan``, the one decision as the status, the snapshot rows, the dashboard and the workbook show it: who renews
a certificate, when certlc will, and what nobody renews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.keyvault.certificates import CertificatePolicy, CertificatePolicyAction, LifetimeAction

from renewal.ca.acme_ari import RenewalWindow
from renewal.decide import Facts, WindowSettings, has_auto_renew, plan

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def facts(renewal_window: RenewalWindow | None = None, **kw: object) -> tuple[Facts, RenewalWindow | None]:
    """The facts of a certificate, and the ACME CA's suggested window when the caller gathered one."""
    base: dict[str, object] = {
        "vault": "kv1",
        "name": "web",
        "version": "v1",
        "enabled": True,
        "not_before": NOW - 300 * DAY,
        "expires_on": NOW + 65 * DAY,
        "policy_issuer": "Unknown",
    }
    return Facts(**(base | kw)), renewal_window  # type: ignore[arg-type]


def ari(days: float) -> RenewalWindow:
    """An ACME CA's suggested window (RFC 9773) of one minute, starting ``days`` from now."""
    start = NOW + days * DAY
    return RenewalWindow("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", start, start + timedelta(minutes=1))


CASES = [
    # (facts, renewed_by, reason, next renewal (days from now) or None)
    (facts(), "certlc", "due", 65 - 365 / 3),  # 1/3 of 365 days is more than 30 days: due already
    (facts(not_before=NOW - 10 * DAY, expires_on=NOW + 80 * DAY), "certlc", "scheduled", 50),
    (facts(not_before=NOW - 60 * DAY, expires_on=NOW + 30 * DAY), "certlc", "due", 0),
    (facts(tags={"certlc-renew-before-days": "10"}, not_before=NOW - 10 * DAY, expires_on=NOW + 80 * DAY),
     "certlc", "scheduled", 70),
    (facts(tags={"certlc-last-outcome": "failed: ca_denied 2026-05-30"}), "certlc", "failed_before", None),
    (facts(expires_on=None), "certlc", "no_expiry", None),
    (facts(enabled=False), "disabled", "disabled", None),
    (facts(tags={"certlc-renew": "false"}, expires_on=NOW + 4 * DAY), "opted_out", "opted_out", None),
    (facts(policy_issuer="Self", auto_renew=True), "keyvault", "keyvault_auto_renew", None),
    (facts(policy_issuer="DigiCert", auto_renew=True), "keyvault", "keyvault_auto_renew", None),
    (facts(policy_issuer="Self"), "nobody", "uncovered", None),
    (facts(policy_issuer="Self", tags={"certlc-managed": "true"}, not_before=NOW - 10 * DAY,
           expires_on=NOW + 80 * DAY), "certlc", "scheduled", 50),
    (facts(policy_issuer="Unknown", auto_renew=True, not_before=NOW - 10 * DAY, expires_on=NOW + 80 * DAY),
     "certlc", "scheduled", 50),  # Key Vault cannot auto-renew an Unknown issuer: certlc does
    (facts(not_before=NOW - 10 * DAY, expires_on=NOW + 80 * DAY, canary_every=7 * DAY), "certlc", "canary_due", -3),
    (facts(not_before=NOW - 2 * DAY, expires_on=NOW + 88 * DAY, canary_every=7 * DAY), "certlc", "canary", 5),
    # ARI (RFC 9773): the ACME CA's window, when it comes before the normal one (50 days out here)
    (facts(not_before=NOW - 10 * DAY, expires_on=NOW + 80 * DAY, renewal_window=ari(5)), "certlc", "ari_scheduled", 5),
    (facts(not_before=NOW - 10 * DAY, expires_on=NOW + 80 * DAY, renewal_window=ari(-1)), "certlc", "ari_due", -1),
    (facts(not_before=NOW - 10 * DAY, expires_on=NOW + 80 * DAY, renewal_window=ari(60)), "certlc", "scheduled", 50),
    (facts(renewal_window=ari(-1)), "certlc", "due", 65 - 365 / 3),  # due by the normal window before that
    (facts(not_before=NOW - 2 * DAY, expires_on=NOW + 88 * DAY, canary_every=7 * DAY, renewal_window=ari(9)),
     "certlc", "canary", 5),  # the canary's schedule comes first
    (facts(policy_issuer="Self", renewal_window=ari(-1)), "nobody", "uncovered", None),
]  # fmt: skip


@pytest.mark.parametrize(("f", "renewed_by", "reason", "days"), CASES)
def test_plan_table(f: tuple[Facts, RenewalWindow | None], renewed_by: str, reason: str, days: float | None) -> None:
    result = plan(f[0], NOW, WindowSettings(default_profile="server"), f[1])
    assert (result.renewed_by, result.reason) == (renewed_by, reason), result.message
    if days is None:
        assert result.next_renewal is None
    else:
        assert result.next_renewal is not None
        assert abs((result.next_renewal - NOW) / DAY - days) < 0.01
    assert result.uncovered == (renewed_by == "nobody")
    assert result.message


def test_auto_renew_is_read_from_the_sdk_policy() -> None:
    policy = CertificatePolicy(issuer_name="Self", subject="CN=a")
    assert not has_auto_renew(policy)
    policy = CertificatePolicy(
        issuer_name="Self",
        subject="CN=a",
        lifetime_actions=[LifetimeAction(action=CertificatePolicyAction.auto_renew, days_before_expiry=30)],
    )
    assert has_auto_renew(policy)
    emails = CertificatePolicy(
        issuer_name="Self",
        subject="CN=a",
        lifetime_actions=[LifetimeAction(action=CertificatePolicyAction.email_contacts, lifetime_percentage=80)],
    )
    assert not has_auto_renew(emails)
    assert not has_auto_renew(None)
