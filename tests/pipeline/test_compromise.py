"""`certlc renew NAME --compromise` on the local stack, run as a user runs it (a child process): a new key whatever the
policy's key reuse (turned off for this renewal and put back), the old version disabled, the old certificate revoked
at the local CA (its CRL lists it, reason keyCompromise), every step audited, one notice naming what happened. And a
compromise renewal that died after its merge is finished by the sweep, from what Key Vault shows, without a second
renewal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from renewal import tags as cert_tags
from renewal.x509info import public_key_der
from tests.pipeline.helpers import HandClock, alerts_for, audit, client, drain_until, functions_clock, seed, unique
from tests.pipeline.test_operator_audit import certlc

pytestmark = pytest.mark.timeout(180)


def leaf(stack: Any, name: str, version: str | None = None) -> tuple[Any, x509.Certificate]:
    got = client(stack).get_certificate_version(name, version) if version else client(stack).get_certificate(name)
    return got, x509.load_der_x509_certificate(bytes(got.cer))


def local_crl(stack: Any) -> x509.CertificateRevocationList:
    """The local CA's CRL as it wrote it, its signature checked with the CA's key."""
    folder = Path(stack.settings["CERTLC_LOCAL_CA_DIR"])
    crl = x509.load_der_x509_crl((folder / "crl.der").read_bytes())
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    return crl


def renewed_by_local_ca(stack: Any, name: str, **policy: Any) -> tuple[Any, x509.Certificate]:
    """A certificate whose current version the local CA issued (the seeding CA's could not be revoked there)."""
    seed(stack, name, days_left=400, lifetime_days=500, **policy)
    done = certlc(stack, "renew", name, "--vault", "kv1", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    return leaf(stack, name)


def test_a_compromise_renewal_gives_a_new_key_disables_and_revokes_the_old(stack, alerts):
    name = unique("compromise")
    old, old_leaf = renewed_by_local_ca(stack, name, reuse_key=True)
    assert client(stack).get_certificate_policy(name).reuse_key is True

    done = certlc(stack, "renew", name, "--vault", "kv1", "--compromise")

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"kv1/{name}: renewed (compromise_finished)" in done.stdout
    new, new_leaf = leaf(stack, name)
    assert new.properties.version != old.properties.version
    assert public_key_der(new_leaf.public_key()) != public_key_der(old_leaf.public_key())  # reuse_key was on
    assert client(stack).get_certificate_policy(name).reuse_key is True  # put back after the renewal
    assert cert_tags.tag(new.properties.tags, cert_tags.COMPROMISED) is None  # every step done

    retired, _ = leaf(stack, name, old.properties.version)
    assert retired.properties.enabled is False
    revocation = cert_tags.tag(retired.properties.tags, cert_tags.REVOCATION) or ""
    assert revocation.startswith("revoked keyCompromise ")
    entry = local_crl(stack).get_revoked_certificate_by_serial_number(old_leaf.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise

    events = [r["event"] for r in audit(stack, name) if r.get("trigger") == "compromise"]
    for step in ("operator_action", "key_reuse_off", "merged", "revoked", "retired", "key_reuse_restored"):
        assert step in events, events
    assert (
        events.index("merged") < events.index("revoked") < events.index("retired") < events.index("compromise_finished")
    )
    (notice,) = [a for a in alerts_for(alerts, name) if a.get("kind") == "compromise"]
    assert "revoked" in notice["subject"] and old.properties.version in str(notice)


def test_a_compromise_renewal_that_died_after_its_merge_is_finished_by_the_sweep(stack):
    """The new version says its predecessor is compromised (as the merge leaves it) and nothing else happened: the
    sweep's renewal revokes and disables the old version and renews nothing."""
    name = unique("compromise-died")
    old, old_leaf = renewed_by_local_ca(stack, name)
    third = certlc(stack, "renew", name, "--vault", "kv1", "--force")  # a new version, as the merge made it
    assert third.returncode == 0, third.stdout + third.stderr
    new, _ = leaf(stack, name)
    tags = dict(new.properties.tags or {}) | {cert_tags.COMPROMISED: old.properties.version}
    client(stack).update_certificate_properties(name, new.properties.version, tags=tags)

    stack.host.trigger_timer("sweep")
    drain_until(stack, lambda: any(r["event"] == "compromise_finished" for r in audit(stack, name)), names=(name,))

    assert leaf(stack, name)[0].properties.version == new.properties.version  # nothing renewed again
    retired, _ = leaf(stack, name, old.properties.version)
    assert retired.properties.enabled is False
    assert (cert_tags.tag(retired.properties.tags, cert_tags.REVOCATION) or "").startswith("revoked keyCompromise")
    assert local_crl(stack).get_revoked_certificate_by_serial_number(old_leaf.serial_number) is not None
    assert cert_tags.tag(leaf(stack, name)[0].properties.tags, cert_tags.COMPROMISED) is None


def test_certlc_revoke_revokes_an_older_version_and_refuses_the_current_one(stack):
    name = unique("revoke")
    older, older_leaf = renewed_by_local_ca(stack, name)
    assert certlc(stack, "renew", name, "--vault", "kv1", "--force").returncode == 0
    current, _ = leaf(stack, name)
    version = older.properties.version

    wrong = certlc(stack, "revoke", name, "--vault", "kv1", "--version", version, "--reason", "stolen")
    assert wrong.returncode == 2 and "unknown revocation reason 'stolen'" in wrong.stderr
    refused = certlc(stack, "revoke", name, "--vault", "kv1", "--reason", "superseded")
    assert refused.returncode == 1 and "refused" in refused.stdout and "current version" in refused.stdout
    looked = certlc(
        stack, "revoke", name, "--vault", "kv1", "--version", version, "--reason", "superseded", "--dry-run"
    )
    assert looked.returncode == 0 and "would_revoke" in looked.stdout, looked.stdout + looked.stderr
    assert cert_tags.tag(leaf(stack, name, version)[0].properties.tags, cert_tags.REVOCATION) is None
    folder = Path(stack.settings["CERTLC_LOCAL_CA_DIR"])
    before = local_crl(stack) if (folder / "crl.der").exists() else None
    assert before is None or before.get_revoked_certificate_by_serial_number(older_leaf.serial_number) is None

    done = certlc(stack, "revoke", name, "--vault", "kv1", "--version", version, "--reason", "superseded", "-o", "json")

    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert (body["status"], body["reason"], body["version"]) == ("revoked", "superseded", version)
    assert int(body["serial"], 16) == older_leaf.serial_number
    entry = local_crl(stack).get_revoked_certificate_by_serial_number(older_leaf.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    assert (cert_tags.tag(leaf(stack, name, version)[0].properties.tags, cert_tags.REVOCATION) or "").startswith(
        "revoked superseded "
    )
    assert leaf(stack, name)[0].properties.version == current.properties.version  # the current one untouched
    again = certlc(stack, "revoke", name, "--vault", "kv1", "--version", version, "--reason", "superseded")
    assert again.returncode == 0 and "already revoked" in again.stdout
    (action,) = [r for r in audit(stack, name) if r.get("action") == "revoke"]
    assert (action["version"], action["reason"]) == (version, "superseded")


def test_a_certificate_revoked_behind_certlcs_back_is_renewed_within_one_sweep(stack, alerts):
    """The CA's operator revokes it (the local CA's CRL lists it, published where the certificate's CDP says): the
    next sweep sees it there, renews it with a new key (trigger `revoked`) and disables the revoked version, without
    asking the CA again; `certlc status NAME` says what the CRL said, before and after."""
    from renewal.ca.local import LocalCA
    from renewal.x509info import der_to_pem

    name = unique("revoked-behind")
    old, old_leaf = renewed_by_local_ca(stack, name)
    cdp = old_leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name[0].value for p in cdp] == [stack.settings["CERTLC_LOCAL_CA_CRL_URL"]]
    status = certlc(stack, "status", name, "--vault", "kv1", "-o", "json")
    assert json.loads(status.stdout)["revocation"]["state"] == "good", status.stdout + status.stderr

    LocalCA(Path(stack.settings["CERTLC_LOCAL_CA_DIR"])).revoke(der_to_pem(bytes(old.cer)), "keyCompromise")
    said = json.loads(certlc(stack, "status", name, "--vault", "kv1", "-o", "json").stdout)
    assert (said["revocation"]["state"], said["plan"]) == ("revoked", "revoked")
    assert said["revocation"]["source"] == f"CRL {stack.settings['CERTLC_LOCAL_CA_CRL_URL']}"

    with functions_clock(HandClock(stack.now()), CERTLC_REVOCATION_READS_PER_SWEEP="100000"):  # a fresh process
        stack.host.trigger_timer("sweep")
        drain_until(stack, lambda: any(r["event"] == "compromise_finished" for r in audit(stack, name)), names=(name,))

    new, new_leaf = leaf(stack, name)
    assert new.properties.version != old.properties.version
    assert public_key_der(new_leaf.public_key()) != public_key_der(old_leaf.public_key())
    retired, _ = leaf(stack, name, old.properties.version)
    assert retired.properties.enabled is False
    assert (cert_tags.tag(retired.properties.tags, cert_tags.REVOCATION) or "").startswith("revoked keyCompromise ")
    assert {r["trigger"] for r in audit(stack, name) if r["event"] == "renewal_initiated"} >= {"revoked"}
    assert not [r for r in audit(stack, name) if r["event"] in ("revoked", "revocation_awaiting_person")]  # not asked
    (notice,) = [a for a in alerts_for(alerts, name) if a.get("kind") == "compromise"]
    assert "its CA revoked it" in notice["subject"] and notice["revocation"] == "revoked"
    after = json.loads(certlc(stack, "status", name, "--vault", "kv1", "-o", "json").stdout)
    assert after["revocation"]["state"] == "good" and after["version"] == new.properties.version
