"""`certlc adopt NAME --ca CA` on the local stack, run as a user runs it (a child process): a self-signed certificate
Key Vault renewed itself becomes certlc's (issuer Unknown, no AutoRenew, tags set, audited) and `certlc renew --force`
then renews it through the local CA; a dry run, a second adopt, an unknown CA, a profile the local CA does not offer
and a missing certificate change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.keyvault.certificates import CertificatePolicyAction, LifetimeAction

from renewal.decide import has_auto_renew
from renewal.x509info import load_certificate
from tests.pipeline.helpers import audit, client, seed, unique
from tests.pipeline.test_operator_audit import certlc

pytestmark = pytest.mark.timeout(180)
AUTO_RENEW = LifetimeAction(CertificatePolicyAction.auto_renew, lifetime_percentage=80)


def self_signed(stack: Any, prefix: str) -> str:
    """A certificate Key Vault renews itself: issuer Self, AutoRenew at 80%, 3 months (the local CA's "server"
    profile issues 90 days, so its validity is one the profile can issue)."""
    name = unique(prefix)
    seed(stack, name, issuer="Self", validity_in_months=3, lifetime_actions=[AUTO_RENEW], tags={"owner": "web"})
    return name


def as_it_is(stack: Any, name: str) -> tuple[Any, ...]:
    """The policy's issuer and actions, the current version and its tags."""
    policy = client(stack).get_certificate_policy(name)
    cert = client(stack).get_certificate(name)
    actions = [(str(a.action), a.lifetime_percentage) for a in policy.lifetime_actions or ()]
    return policy.issuer_name, actions, cert.properties.version, dict(cert.properties.tags or {})


def adopted_records(stack: Any, name: str) -> list[dict[str, Any]]:
    return [r for r in audit(stack, name) if r["event"] == "operator_action" and r["action"] == "adopt"]


def local_ca_subject(stack: Any) -> str:
    pem = (Path(stack.settings["CERTLC_LOCAL_CA_DIR"]) / "ca.pem").read_bytes()
    return load_certificate(pem).subject.rfc4514_string()


def test_an_adopted_self_signed_certificate_is_renewed_by_certlc_through_the_local_ca(stack):
    name = self_signed(stack, "adopt-self")
    before = client(stack).get_certificate(name)

    done = certlc(stack, "adopt", name, "--vault", "kv1", "--ca", "local", "--profile", "server")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert f"kv1/{name}: adopted" in done.stdout and "issuer Self -> Unknown" in done.stdout
    assert "it renews nothing now: certlc renews it on" in done.stdout

    policy = client(stack).get_certificate_policy(name)
    assert (policy.issuer_name, has_auto_renew(policy)) == ("Unknown", False)
    assert [(a.action, a.lifetime_percentage) for a in policy.lifetime_actions] == [
        (CertificatePolicyAction.email_contacts, 80)
    ]
    after = client(stack).get_certificate(name)
    assert after.properties.version == before.properties.version  # nothing renewed
    assert after.properties.tags == {"owner": "web", "certlc-ca": "local", "certlc-profile": "server"}
    (record,) = adopted_records(stack, name)
    assert (record["ca"], record["profile"], record["version"]) == ("local", "server", before.properties.version)
    assert record["old"]["issuer"] == "Self" and record["changed"]["issuer"] == "Unknown"
    assert record["old"]["certlc-ca"] is None and record["changed"]["certlc-ca"] == "local"

    renewed = certlc(stack, "renew", name, "--vault", "kv1", "--force")
    assert renewed.returncode == 0 and "renewed" in renewed.stdout, (renewed.stdout, renewed.stderr)
    newest = client(stack).get_certificate(name)
    assert newest.properties.version != before.properties.version
    assert load_certificate(bytes(newest.cer)).issuer.rfc4514_string() == local_ca_subject(stack)
    assert load_certificate(bytes(before.cer)).issuer.rfc4514_string() != local_ca_subject(stack)


def test_a_dry_run_says_what_would_change_and_changes_nothing(stack):
    name = self_signed(stack, "adopt-dry")
    was = as_it_is(stack, name)
    done = certlc(stack, "-o", "json", "adopt", name, "--vault", "kv1", "--ca", "local", "--dry-run")
    assert done.returncode == 0, (done.stdout, done.stderr)
    body = json.loads(done.stdout)
    assert (body["status"], body["dry_run"], body["profile"]) == ("would_adopt", True, "server")  # CERTLC_CA_PROFILE
    assert body["changes"]["issuer"] == {"old": "Self", "new": "Unknown"}
    assert body["changes"]["lifetime_actions"]["new"] == ["EmailContacts at 80% of lifetime"]
    assert "certlc-profile" not in body["changes"]  # no --profile: the setting's, not pinned
    assert body["next_renewal"]
    assert as_it_is(stack, name) == was
    assert audit(stack, name) == []


def test_a_second_adopt_says_already_adopted_and_changes_nothing(stack):
    name = self_signed(stack, "adopt-twice")
    first = certlc(stack, "adopt", name, "--vault", "kv1", "--ca", "local", "--profile", "server")
    assert first.returncode == 0, (first.stdout, first.stderr)
    was = as_it_is(stack, name)
    again = certlc(stack, "adopt", name, "--vault", "kv1", "--ca", "LOCAL", "--profile", "server")
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert "already_adopted" in again.stdout and "certlc already renews it" in again.stdout
    assert as_it_is(stack, name) == was
    assert len(adopted_records(stack, name)) == 1


def test_an_unknown_ca_is_a_configuration_mistake(stack):
    name = self_signed(stack, "adopt-noca")
    was = as_it_is(stack, name)
    done = certlc(stack, "adopt", name, "--vault", "kv1", "--ca", "nosuch")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "unknown CA adapter 'nosuch'" in done.stderr
    assert as_it_is(stack, name) == was


def test_a_profile_the_local_ca_does_not_offer_changes_nothing(stack):
    name = self_signed(stack, "adopt-gold")
    was = as_it_is(stack, name)
    done = certlc(stack, "adopt", name, "--vault", "kv1", "--ca", "local", "--profile", "gold")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "refused (profile_refused)" in done.stdout and "offers no profile 'gold'" in done.stdout
    assert as_it_is(stack, name) == was
    assert audit(stack, name) == []


def test_a_missing_certificate_exits_1_with_one_line(stack):
    done = certlc(stack, "adopt", unique("adopt-none"), "--vault", "kv1", "--ca", "local")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "does not exist in vault kv1" in done.stderr
    assert done.stdout == ""
