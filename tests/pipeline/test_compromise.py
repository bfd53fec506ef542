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
from tests.pipeline.helpers import (
    HandClock,
    alerts_for,
    audit,
    client,
    deliver,
    drain_until,
    functions_clock,
    near_expiry_event,
    seed,
    unique,
    versions,
)
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


def test_a_crash_after_the_revocation_and_before_the_disable_revokes_once(stack):
    """The process dies right after its CA revoked the old certificate, before certlc wrote that down: the retry asks
    the CA again (it answers that it already revoked it), disables the old version and finishes; one new version,
    one revocation at the CA."""
    from unittest import mock

    from renewal.ca.local import LocalCA
    from renewal.messages import RenewalRequest

    name = unique("compromise-crash")
    old, old_leaf = renewed_by_local_ca(stack, name)
    real = LocalCA.revoke
    crashed: list[str] = []

    def revoke_then_die(self: LocalCA, certificate_pem: str, reason: str):  # type: ignore[no-untyped-def]
        done = real(self, certificate_pem, reason)
        if not crashed:
            crashed.append(done.serial)
            raise RuntimeError("injected crash after the revocation")
        return done

    request = RenewalRequest("kv1", name, "compromise", version=old.properties.version)
    with mock.patch.object(LocalCA, "revoke", revoke_then_die):
        deliver(stack, request.to_json())
        drain_until(stack, lambda: any(r["event"] == "compromise_finished" for r in audit(stack, name)), names=(name,))

    assert crashed == [f"{old_leaf.serial_number:x}"]
    assert len(versions(stack, name)) == 3  # the seeded one, the forced renewal, and one new version
    retired, _ = leaf(stack, name, old.properties.version)
    assert retired.properties.enabled is False
    folder = Path(stack.settings["CERTLC_LOCAL_CA_DIR"]) / "revoked"
    assert [p.stem for p in folder.glob(f"{old_leaf.serial_number:x}.json")] == [f"{old_leaf.serial_number:x}"]
    crl = local_crl(stack)
    assert sum(e.serial_number == old_leaf.serial_number for e in crl) == 1
    (said,) = [r for r in audit(stack, name) if r["event"] == "revoked"]
    assert said["detail"] == "already revoked"  # the CA's own word the second time: nothing revoked twice
    assert [r["reason"] for r in audit(stack, name) if r["event"] == "retried"] == ["unexpected_error"]


def test_a_compromise_renewal_racing_an_expiry_event_makes_one_new_version_and_one_revocation(stack):
    """The operator's `--compromise` (pinned to the version they saw) and Key Vault's near-expiry event for that same
    version arrive together: whichever renews first, the other finds the version replaced. The compromise then only
    retires the old version (the replacement has a new key), so there is one new version and one revocation."""
    import threading

    import requests

    name = unique("compromise-race")
    old, old_leaf = renewed_by_local_ca(stack, name, tags={cert_tags.RENEW_BEFORE_DAYS: "100"})  # always due
    event = near_expiry_event(stack, name, old.properties.version)
    answers: list[int] = []

    def post() -> None:
        answer = requests.post(
            stack.host.eventgrid_url("event"), json=[event], headers={"aeg-event-type": "Notification"}, timeout=30
        )
        answers.append(answer.status_code)

    poster = threading.Thread(target=post)
    poster.start()
    done = certlc(stack, "renew", name, "--vault", "kv1", "--compromise", "--version", old.properties.version)
    poster.join(timeout=60)
    assert answers == [200] and done.returncode in (0, 1), done.stdout + done.stderr
    drain_until(stack, lambda: any(r["event"] == "compromise_finished" for r in audit(stack, name)), names=(name,))

    assert len(versions(stack, name)) == 3  # seeded, forced, and one new version
    new, new_leaf = leaf(stack, name)
    assert public_key_der(new_leaf.public_key()) != public_key_der(old_leaf.public_key())
    assert cert_tags.tag(new.properties.tags, cert_tags.COMPROMISED) is None and new.properties.enabled
    retired, _ = leaf(stack, name, old.properties.version)
    assert retired.properties.enabled is False
    revoked = [e.serial_number for e in local_crl(stack)]
    assert revoked.count(old_leaf.serial_number) == 1 and new_leaf.serial_number not in revoked
    assert sum(r["event"] == "merged" and not r.get("recovered") for r in audit(stack, name)) == 2  # forced + one
    trail = audit(stack, name)
    replaced = [r["action"] for r in trail if r["event"] == "compromise_of_replaced"]
    superseded = [r for r in trail if r["event"] == "skipped" and r.get("reason") == "superseded"]
    assert (replaced, len(superseded)) in ((["retire_old"], 0), ([], 1)), trail  # whichever came first


def test_a_compromise_of_a_version_an_expiry_renewal_replaced_only_retires_that_version(stack):
    """The expiry renewal got there first with a new key: `--compromise --version OLD` renews nothing, and revokes and
    disables only the old version; the replacement stays trusted."""
    name = unique("compromise-late")
    old, old_leaf = renewed_by_local_ca(stack, name, tags={cert_tags.RENEW_BEFORE_DAYS: "100"})  # always due
    deliver(stack, near_expiry_request(name, old.properties.version))
    replacement, replacement_leaf = leaf(stack, name)
    assert replacement.properties.version != old.properties.version

    done = certlc(stack, "renew", name, "--vault", "kv1", "--compromise", "--version", old.properties.version)

    assert done.returncode == 0 and "renewed (compromise_finished)" in done.stdout, done.stdout + done.stderr
    assert leaf(stack, name)[0].properties.version == replacement.properties.version  # nothing renewed again
    retired, _ = leaf(stack, name, old.properties.version)
    assert retired.properties.enabled is False
    revoked = [e.serial_number for e in local_crl(stack)]
    assert old_leaf.serial_number in revoked and replacement_leaf.serial_number not in revoked
    (replaced,) = [r for r in audit(stack, name) if r["event"] == "compromise_of_replaced"]
    assert (replaced["action"], replaced["old_version"]) == ("retire_old", old.properties.version)


def near_expiry_request(name: str, version: str) -> str:
    """The queue message a near-expiry event for ``version`` becomes."""
    from renewal.messages import RenewalRequest

    return RenewalRequest("kv1", name, "near_expiry", version=version).to_json()
