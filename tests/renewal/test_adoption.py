"""Adoption's pure decision (renewal/adoption.py): each refusal with its reason, "already adopted", and what adopting
changes in the policy (issuer, AutoRenew) and the tags, with the old values."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from azure.keyvault.certificates import CertificatePolicy, CertificatePolicyAction, LifetimeAction

from renewal.adoption import Change, Input, Reason, adopted_facts, adopted_policy, decide, profile_of, with_tag
from renewal.decide import Facts, WindowSettings, has_auto_renew, plan
from renewal.keyvault import PendingOperation
from renewal.policy_change import ACME_VALIDITY, CaLimits

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
AUTO_RENEW = LifetimeAction(CertificatePolicyAction.auto_renew, lifetime_percentage=80)
EMAIL = LifetimeAction(CertificatePolicyAction.email_contacts, lifetime_percentage=80)
LOCAL_SERVER = CaLimits("local", "server", validity_days=90)


def policy(**overrides: Any) -> CertificatePolicy:
    given: dict[str, Any] = {
        "issuer_name": "Self",
        "subject": "CN=portal.example.com",
        "san_dns_names": ["portal.example.com"],
        "key_type": "RSA",
        "key_size": 2048,
        "validity_in_months": 3,
        "exportable": True,
        "reuse_key": False,
        "content_type": "application/x-pkcs12",
        "lifetime_actions": [AUTO_RENEW],
    }
    return CertificatePolicy(**(given | overrides))


def facts(**overrides: Any) -> Facts:
    given: dict[str, Any] = {
        "vault": "kv1",
        "name": "portal",
        "version": "v1",
        "enabled": True,
        "not_before": NOW - dt.timedelta(days=10),
        "expires_on": NOW + dt.timedelta(days=80),
        "tags": {"Recipient": "web@example.com"},
        "policy_issuer": "Self",
        "auto_renew": True,
    }
    return Facts(**(given | overrides))


def given(**overrides: Any) -> Input:
    base = Input(
        vault="kv1",
        name="portal",
        ca="local",
        profile="server",
        settings=WindowSettings(default_ca="local"),
        certificate=facts(),
        policy=policy(),
        limits=LOCAL_SERVER,
    )
    return replace(base, **overrides)


MANAGED = facts(policy_issuer="Unknown", auto_renew=False, tags={"certlc-ca": "local", "certlc-profile": "server"})
UNKNOWN_POLICY = policy(issuer_name="Unknown", lifetime_actions=[EMAIL])


@pytest.mark.parametrize(
    ("case", "outcome", "reason", "says"),
    [
        (given(certificate=None, policy=None, limits=None), "refuse", Reason.NOT_FOUND, "does not exist"),
        (given(certificate=facts(enabled=False)), "refuse", Reason.DISABLED, "enable it"),
        (
            given(certificate=facts(tags={"Certlc-Renew": "false"})),
            "refuse",
            Reason.OPTED_OUT,
            "to opt it in, remove that tag",
        ),
        (
            given(pending=PendingOperation("r1", "inprogress", b"csr")),
            "refuse",
            Reason.PENDING_OPERATION,
            "pending operation",
        ),
        (given(profile=None, limits=None), "refuse", Reason.NO_PROFILE, "pass --profile"),
        (given(certificate=MANAGED, policy=UNKNOWN_POLICY), "already", Reason.ALREADY_ADOPTED, "already renews it"),
        (
            given(profile=None, certificate=MANAGED, policy=UNKNOWN_POLICY),
            "already",
            Reason.ALREADY_ADOPTED,
            "profile 'server'",
        ),
        (given(policy=policy(key_size=1024)), "refuse", Reason.KEY_REFUSED, "key RSA-1024 is not one"),
        (
            given(profile="gold", limits=CaLimits("local", "gold", problem="the local CA offers no profile 'gold'")),
            "refuse",
            Reason.PROFILE_REFUSED,
            "offers no profile 'gold'",
        ),
        (given(policy=policy(validity_in_months=12)), "refuse", Reason.PROFILE_REFUSED, "issues 90 days"),
        (
            given(certificate=facts(tags={f"t{i}": "x" for i in range(12)})),
            "refuse",
            Reason.TOO_MANY_TAGS,
            "Key Vault allows 15",
        ),
        (given(), "adopt", Reason.ADOPTED, "issuer Self -> Unknown"),
        # a CA that sets the validity itself is not asked about the policy's
        (
            given(
                ca="acme",
                policy=policy(validity_in_months=12),
                limits=CaLimits("acme", "x", validity_fixed=ACME_VALIDITY),
            ),
            "adopt",
            Reason.ADOPTED,
            "CA 'acme'",
        ),
        # managed, but through another CA or profile: adoption moves it
        (
            given(certificate=MANAGED, policy=UNKNOWN_POLICY, ca="cfssl"),
            "adopt",
            Reason.ADOPTED,
            "certlc-ca local -> cfssl",
        ),
        (
            given(certificate=MANAGED, policy=UNKNOWN_POLICY, profile="client", limits=CaLimits("local", "client", 90)),
            "adopt",
            Reason.ADOPTED,
            "certlc-profile server -> client",
        ),
    ],
)
def test_the_decision_and_its_reason(case: Input, outcome: str, reason: Reason, says: str) -> None:
    decided = decide(case)
    assert (decided.outcome, decided.reason) == (outcome, reason), decided.message
    assert says in decided.message
    assert decided.exit_code == (1 if outcome == "refuse" else 0)
    if outcome != "adopt":
        assert decided.changes == ()


def test_a_self_signed_certificate_with_auto_renew_changes_issuer_actions_and_tags() -> None:
    decided = decide(given())
    assert decided.policy_changes == (
        Change("issuer", "Self", "Unknown"),
        Change("lifetime_actions", ["AutoRenew at 80% of lifetime"], ["EmailContacts at 80% of lifetime"]),
    )
    assert decided.tag_changes == (Change("certlc-ca", None, "local"), Change("certlc-profile", None, "server"))
    assert decided.tags == {"Recipient": "web@example.com", "certlc-ca": "local", "certlc-profile": "server"}


def test_an_integrated_issuer_without_auto_renew_only_changes_the_issuer() -> None:
    decided = decide(given(policy=policy(issuer_name="DigiCert", lifetime_actions=[EMAIL], certificate_type="OV-SSL")))
    assert decided.policy_changes == (Change("issuer", "DigiCert", "Unknown"),)


def test_without_profile_the_template_then_the_setting_is_used_and_no_profile_tag_written() -> None:
    template = given(profile=None, certificate=facts(template="WebServer"), limits=CaLimits("adcs", "WebServer"))
    assert profile_of(template) == "WebServer"
    decided = decide(replace(template, ca="adcs"))
    assert (decided.profile, [c.field for c in decided.tag_changes]) == ("WebServer", ["certlc-ca"])
    setting = given(profile=None, settings=WindowSettings(default_profile="server"))
    assert profile_of(setting) == "server"


def test_the_adopted_policy_keeps_everything_but_issuer_and_auto_renew() -> None:
    old = policy(
        issuer_name="DigiCert",
        certificate_type="OV-SSL",
        reuse_key=True,
        key_type="EC",
        key_size=None,
        key_curve_name="P-384",
        lifetime_actions=[LifetimeAction(CertificatePolicyAction.auto_renew, days_before_expiry=30)],
    )
    new = adopted_policy(old)
    assert (new.issuer_name, new.certificate_type, has_auto_renew(new)) == ("Unknown", None, False)
    (action,) = new.lifetime_actions
    assert (action.action, action.days_before_expiry) == (CertificatePolicyAction.email_contacts, 30)
    kept = ("subject", "san_dns_names", "key_type", "key_curve_name", "validity_in_months", "reuse_key", "exportable")
    assert {f: getattr(new, f) for f in kept} == {f: getattr(old, f) for f in kept}


def test_a_tag_is_replaced_whatever_the_case_of_its_name() -> None:
    assert with_tag({"Certlc-CA": "adcs", "a": "b"}, "certlc-ca", "local") == {"a": "b", "certlc-ca": "local"}


def test_the_one_decision_renews_it_once_adopted() -> None:
    """Before: Key Vault renews it itself; after: certlc, at the normal window."""
    decided = decide(given())
    assert plan(facts(), NOW, WindowSettings()).renewed_by == "keyvault"
    after = plan(adopted_facts(facts(), decided), NOW, WindowSettings())
    assert (after.renewed_by, after.outcome) == ("certlc", "skip")
    assert after.next_renewal is not None and after.next_renewal > NOW
