"""The decision chain and its pure helpers: every verdict has a stable reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from renewal.backoff import Backoff
from renewal.ca.acme_ari import RenewalWindow
from renewal.decide import Input, Reason, WindowSettings, check_request, decide, facts_of, renewal_threshold
from renewal.keyvault import CertificateSnapshot, PendingOperation
from renewal.ledger import RenewalRecord
from renewal.messages import InvalidMessage, RenewalRequest
from renewal.revocation import RevocationStatus
from renewal.vaults import Vault, VaultConfigError, parse_allow_list
from renewal.x509info import adcs_template
from tests.fixtures.pki import ChainCA

NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
VAULTS = {"kv1": Vault("kv1", "https://kv1.vault.azure.net")}
CA = ChainCA()  # issues the leaves that carry an AD CS template extension, which trustme's leaves cannot


def cert(
    days_left: float = 10,
    lifetime: float = 90,
    issuer: str = "Unknown",
    tags=None,
    version="v1",
    enabled=True,
    der: bytes | None = None,
    expires_on: dt.datetime | bool | None = True,
) -> CertificateSnapshot:
    expires = NOW + dt.timedelta(days=days_left)
    return CertificateSnapshot(
        "kv1",
        "web",
        version,
        enabled,
        expires - dt.timedelta(days=lifetime),
        expires if expires_on is True else expires_on,
        issuer,
        tags or {},
        der,
        None,
    )


def verdict(
    snapshot,
    reason="near_expiry",
    version=None,
    settings=None,
    window=None,
    record=None,
    pending=None,
    revocation=None,
    **request,
):
    req = RenewalRequest(request.pop("vault", "kv1"), request.pop("name", "web"), reason, version=version, **request)
    facts = facts_of(snapshot) if snapshot is not None else None
    chosen = settings or WindowSettings(default_profile="server")
    return decide(Input(req, VAULTS, facts, NOW, chosen, window, record, pending, revocation=revocation))


def record(version="v1", state="pending", late_by=dt.timedelta(0)) -> RenewalRecord:
    """Another renewal's record of ``version``, its next step ``late_by`` ago."""
    return RenewalRecord(owner="other", state=state, next_action_at=NOW - late_by, version=version)


STALE = dt.timedelta(minutes=16)
IN_PROGRESS = PendingOperation("op-1", "inprogress", b"csr")
AUTO_RENEW = SimpleNamespace(lifetime_actions=[SimpleNamespace(action="AutoRenew")])
FAILED = {"certlc-last-outcome": "failed ca_denied 2030-05-30"}


def said(state: str) -> RevocationStatus:
    """What the CA's CRL said of the current version."""
    revoked = state == "revoked"
    return RevocationStatus(
        state,  # type: ignore[arg-type]
        "CRL http://ca.example/crl",
        "keyCompromise" if revoked else None,
        NOW - dt.timedelta(days=1) if revoked else None,
        NOW,
        NOW + dt.timedelta(days=1),
        "",
    )


def ari(days: float) -> RenewalWindow:
    """An ACME CA's suggested window (RFC 9773) of one minute, starting ``days`` from now."""
    start = NOW + dt.timedelta(days=days)
    return RenewalWindow("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", start, start + dt.timedelta(minutes=1))


CHAIN = [
    (cert(), {"vault": "other"}, "reject", "vault_not_allowed"),
    (cert(), {"name": "bad/name"}, "reject", "invalid_name"),
    (None, {}, "skip", "not_found"),
    (cert(enabled=False), {}, "skip", "disabled"),
    (cert(issuer="Self"), {}, "skip", "uncovered"),
    (cert(issuer="DigiCert"), {}, "skip", "uncovered"),
    (dataclasses.replace(cert(issuer="Self"), policy=AUTO_RENEW), {}, "skip", "keyvault_auto_renew"),
    (dataclasses.replace(cert(issuer="Unknown"), policy=AUTO_RENEW), {}, "renew", "due"),  # KV cannot: certlc
    (cert(expires_on=None), {}, "skip", "no_expiry"),
    (cert(expires_on=None), {"reason": "manual", "force": True}, "renew", "due"),
    # another renewal's record of this version: in flight while its owner is not late
    (cert(), {"record": record()}, "wait", "in_flight"),
    (cert(days_left=200, lifetime=365), {"record": record()}, "wait", "in_flight"),  # a forced one, say
    (cert(), {"record": record(late_by=STALE), "pending": IN_PROGRESS}, "renew", "orphaned_pending_operation"),
    (cert(), {"record": record(late_by=STALE)}, "renew", "due"),  # owner gone, nothing pending: renewed anew
    (cert(), {"record": record(version="v0")}, "renew", "due"),  # an earlier version's leftovers
    (cert(), {"pending": IN_PROGRESS}, "renew", "orphaned_pending_operation"),  # started by hand
    # an orphan is taken over whether or not the certificate is due
    (cert(days_left=200, lifetime=365), {"pending": IN_PROGRESS}, "renew", "orphaned_pending_operation"),
    (cert(days_left=200, lifetime=365), {"pending": PendingOperation("op", "failed", None)}, "skip", "scheduled"),
    (cert(tags=FAILED), {"pending": IN_PROGRESS}, "skip", "failed_before"),
    # this renewal's own pending operation from an earlier attempt (the request names it) goes on, due or not
    (cert(days_left=200, lifetime=365), {"pending": IN_PROGRESS, "kv_request_id": "op-1"}, "renew", "resumed"),
    (cert(tags={"CERTLC-RENEW": "false"}), {}, "skip", "opted_out"),
    (cert(), {"version": "v0"}, "skip", "superseded"),
    (cert(days_left=200, lifetime=365), {}, "skip", "scheduled"),
    (cert(days_left=200, lifetime=365), {"reason": "manual"}, "skip", "scheduled"),  # certlc renew NAME: if due
    (cert(days_left=200, lifetime=365), {"reason": "manual", "force": True}, "renew", "forced"),  # --force, early
    (cert(days_left=200, lifetime=365), {"reason": "compromise"}, "renew", "compromise"),
    # a compromise renewal merged, its old version not yet revoked and disabled: finished, never renewed again
    (cert(days_left=200, lifetime=365, tags={"certlc-compromised": "v0"}), {}, "renew", "compromise_unfinished"),
    (cert(tags={"certlc-compromised": "v0"}), {"reason": "compromise"}, "renew", "compromise_unfinished"),
    (cert(tags={"certlc-compromised": "v0"}), {"record": record()}, "wait", "in_flight"),  # its owner finishes it
    # what its CA says: revoked is renewed now with a new key, whatever its dates; good or unknown changes nothing
    (cert(days_left=200, lifetime=365), {"revocation": said("revoked")}, "renew", "revoked"),
    (cert(days_left=200, lifetime=365), {"revocation": said("good")}, "skip", "scheduled"),
    (cert(days_left=200, lifetime=365), {"revocation": said("unknown")}, "skip", "scheduled"),
    (cert(tags={"certlc-renew": "false"}), {"revocation": said("revoked")}, "skip", "opted_out"),  # not certlc's
    (cert(days_left=200, lifetime=365), {"reason": "revoked"}, "renew", "revoked"),  # the sweep's request
    (cert(days_left=5), {"reason": "manual", "force": True}, "renew", "due"),  # forced, but due anyway: says due
    (cert(days_left=200, lifetime=365), {"reason": "sweep", "force": True}, "renew", "forced"),
    (cert(days_left=200, lifetime=365), {"reason": "canary", "version": "v1"}, "renew", "due"),  # not due: canary
    (cert(), {"reason": "canary", "version": "v1"}, "renew", "due"),  # due anyway
    (cert(days_left=200, lifetime=365), {"reason": "canary"}, "skip", "scheduled"),  # names no version: not skipped
    (cert(days_left=200, lifetime=365), {"reason": "canary", "version": "v0"}, "skip", "superseded"),  # renewed
    (
        cert(days_left=200, lifetime=365, tags={"certlc-last-outcome": "failed ca_denied 2030-05-30"}),
        {"reason": "canary", "version": "v1"},
        "skip",
        "failed_before",
    ),
    (
        cert(tags={"certlc-last-outcome": "failed ca_denied 2030-05-30"}),
        {"reason": "sweep"},
        "skip",
        "failed_before",
    ),
    (cert(tags={"certlc-last-outcome": "failed ca_denied 2030-05-30"}), {}, "skip", "failed_before"),
    (
        cert(tags={"certlc-last-outcome": "failed ca_denied 2030-05-30"}),
        {"reason": "expired"},
        "skip",
        "failed_before",
    ),
    (cert(tags={"certlc-last-outcome": "failed ca_denied 2030-05-30"}), {"reason": "manual"}, "renew", "due"),
    (cert(issuer="Self", tags={"certlc-managed": "true"}), {}, "renew", "due"),
    (cert(days_left=-3), {"reason": "expired"}, "renew", "due"),
    (cert(tags={f"team{n}": "x" for n in range(12)}), {}, "renew", "due"),  # 12 + certlc's 3 = 15
    (cert(tags={f"team{n}": "x" for n in range(13)}), {}, "fail", "too_many_tags"),
    (cert(tags={"owner": "x" * 257}), {}, "fail", "too_many_tags"),
    (cert(), {"settings": WindowSettings()}, "fail", "no_profile"),  # nothing names a profile
    (cert(tags={**{f"team{n}": "x" for n in range(12)}, "certlc-correlation": "c"}), {}, "renew", "due"),
    # ARI (RFC 9773): the ACME CA's window brings a renewal forward, never pushes it back
    (cert(days_left=200, lifetime=365), {"reason": "sweep", "window": ari(-1)}, "renew", "ari_due"),
    (cert(days_left=200, lifetime=365), {"reason": "sweep", "window": ari(-0.001)}, "renew", "ari_due"),  # ended
    (cert(days_left=200, lifetime=365), {"reason": "sweep", "window": ari(2)}, "skip", "ari_scheduled"),
    (cert(days_left=200, lifetime=365), {"reason": "sweep", "window": None}, "skip", "scheduled"),
    (cert(), {"reason": "sweep", "window": ari(30)}, "renew", "due"),  # due anyway: a later window waits not
    (cert(), {"reason": "sweep", "window": ari(-1)}, "renew", "due"),  # due anyway: not early
    (cert(days_left=200, lifetime=365, issuer="Self"), {"window": ari(-1)}, "skip", "uncovered"),
    (cert(days_left=200, lifetime=365), {"window": ari(-1), "version": "v0"}, "skip", "superseded"),
    (
        cert(days_left=200, lifetime=365, tags={"certlc-last-outcome": "failed ca_denied 2030-05-30"}),
        {"reason": "sweep", "window": ari(-1)},
        "skip",
        "failed_before",
    ),
]


@pytest.mark.parametrize(("snapshot", "kwargs", "outcome", "reason"), CHAIN)
def test_chain_outcomes(snapshot, kwargs, outcome, reason):
    result = verdict(snapshot, **kwargs)
    assert (result.outcome, result.reason) == (outcome, reason), result.message
    assert result.message


def test_the_table_reaches_every_reason():
    """A reason no row reaches is a check nobody tested, or one that can never decide."""
    reached = {reason for _, _, _, reason in CHAIN}
    canary = {Reason.CANARY_SCHEDULED, Reason.CANARY_DUE}  # tests/renewal/test_plan.py, with canary settings
    assert {str(r) for r in Reason} - reached - canary == set()


def test_a_renewal_inside_the_cas_window_carries_it_and_says_it_is_early():
    window = ari(-1)
    result = verdict(cert(days_left=200, lifetime=365), window=window)
    assert result.renewal_window == window  # the new order names the certificate it replaces
    assert "early" in result.message and "ARI" in result.message
    later = verdict(cert(days_left=200, lifetime=365), window=ari(2))
    assert later.next_renewal == ari(2).renew_at and later.message.endswith("on 2030-06-03 UTC")


def test_no_profile_is_a_permanent_failure_that_says_what_to_set():
    result = verdict(cert(), settings=WindowSettings())
    assert (result.outcome, result.reason) == ("fail", "no_profile")
    assert "certlc-profile" in result.message and "CERTLC_CA_PROFILE" in result.message


def test_profile_and_ca_come_from_tags_before_settings():
    result = verdict(cert(tags={"certlc-profile": "WebServer2", "certlc-ca": "cfssl"}))
    assert (result.ca, result.profile) == ("cfssl", "WebServer2")


def _with_template(extension_oid: str, value: bytes) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    template = x509.UnrecognizedExtension(x509.ObjectIdentifier(extension_oid), value)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")])
    built = CA.issue(key.public_key(), name, NOW, NOW + dt.timedelta(days=1), [(template, False)])
    return built.public_bytes(Encoding.DER)


def test_the_adcs_template_is_read_from_the_certificate():
    # v2: SEQUENCE { OID 1.3.6.1.4.1.311.21.8.1.2, INTEGER 100, INTEGER 3 }
    oid_body = bytes([0x2B, 6, 1, 4, 1, 0x82, 0x37, 0x15, 8, 1, 2])
    v2 = bytes([0x30, 2 + len(oid_body) + 6, 0x06, len(oid_body)]) + oid_body + bytes([2, 1, 100, 2, 1, 3])
    der = _with_template("1.3.6.1.4.1.311.21.7", v2)
    assert adcs_template(x509.load_der_x509_certificate(der)) == "1.3.6.1.4.1.311.21.8.1.2"
    assert verdict(cert(der=der), settings=WindowSettings()).profile == "1.3.6.1.4.1.311.21.8.1.2"
    name = "WebServer".encode("utf-16-be")
    v1 = bytes([0x1E, len(name)]) + name
    assert adcs_template(x509.load_der_x509_certificate(_with_template("1.3.6.1.4.1.311.20.2", v1))) == "WebServer"


@pytest.mark.parametrize(
    ("days_left", "lifetime", "tags", "expected_days"),
    [(10, 90, {}, 30), (100, 365, {}, 365 / 3), (1, 30, {}, 30), (10, 90, {"certlc-renew-before-days": "5"}, 5)],
)
def test_renewal_threshold(days_left, lifetime, tags, expected_days):
    certificate = cert(days_left, lifetime, tags=tags)
    threshold = renewal_threshold(certificate.not_before, certificate.expires_on, certificate.tags, WindowSettings())
    assert threshold == dt.timedelta(days=expected_days)


def test_request_checks_run_before_anything_is_read():
    bad = RenewalRequest("kv1", "x" * 200, "manual")
    assert check_request(Input(bad, VAULTS, None, NOW, WindowSettings())).reason == "invalid_name"


def test_backoff_doubles_with_jitter_caps_and_honours_retry_after():
    backoff = Backoff(base_seconds=60, cap_seconds=3600, max_attempts=5)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 60), (2, 120), (3, 240), (8, 3600)]:
        delay = backoff.delay(attempt, rng=rng)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.delay(1, retry_after=900, rng=rng) == 900
    assert not backoff.exhausted(4) and backoff.exhausted(5)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"schema": 2, "vault": "kv1", "name": "a", "reason": "manual"}, "schema"),
        ({"schema": 1, "vault": "kv1", "reason": "manual"}, "'name'"),
        ({"schema": 1, "vault": "kv1", "name": "a", "reason": "because"}, "trigger 'because'"),
        ({"schema": 1, "vault": "kv1", "name": "a", "trigger": "because"}, "trigger 'because'"),
        ({"schema": 1, "vault": "kv1", "name": "a", "reason": "manual", "attempt": 0}, "attempt"),
        ({"schema": 1, "vault": "kv1", "name": "a", "reason": "manual", "force": "yes"}, "force"),
    ],
)
def test_malformed_messages_are_refused_with_the_field_named(body, fragment):
    with pytest.raises(InvalidMessage, match=fragment):
        RenewalRequest.from_dict(body)


@pytest.mark.parametrize("trigger", ["near_expiry", "canary"])
def test_messages_round_trip(trigger):
    request = RenewalRequest("kv1", "web", trigger, version="abc", attempt=3, ca_request_id="r1")
    import json

    assert RenewalRequest.from_dict(json.loads(request.to_json())) == request


def test_allow_list_parsing():
    vaults = parse_allow_list("contoso-kv, Local1=https://127.0.0.1:8443/ ;fabrikam")
    assert vaults["contoso-kv"].url == "https://contoso-kv.vault.azure.net"
    assert vaults["local1"] == Vault("Local1", "https://127.0.0.1:8443")
    for bad in ("a", "evil.com#x", "kv1=http://127.0.0.1", "kv1=https://host/path", "kv--1"):
        with pytest.raises(VaultConfigError):
            parse_allow_list(bad)


def test_too_many_tags_names_them_and_what_to_remove() -> None:
    result = verdict(cert(tags={f"team{n:02}": "x" for n in range(14)}))
    assert "14 of your tags plus certlc's 3" in result.message
    assert "Key Vault allows 15: remove 2 of team00, team01" in result.message


def test_who_renews_a_certificate_certlc_leaves_is_said_in_the_words_status_uses():
    """`certlc renew` and `certlc status` give the same answer: Key Vault only with an AutoRenew action."""
    for issuer, policy, reason, who in [
        ("Self", AUTO_RENEW, "keyvault_auto_renew", "Key Vault renews it itself"),
        ("DigiCert", None, "uncovered", "nobody renews it"),
    ]:
        decided = verdict(dataclasses.replace(cert(issuer=issuer), policy=policy))
        assert (decided.outcome, decided.reason) == ("skip", reason)
        assert who in decided.message


@pytest.mark.parametrize(
    ("snapshot", "kwargs", "tell"),
    [
        (cert(issuer="Self", days_left=31), {}, "nobody"),  # outside CERTLC_WARN_DAYS
        (cert(issuer="Self", days_left=30), {}, "owners"),  # nobody renews it: a notice a day from 30 days
        (cert(issuer="Self", days_left=7), {}, "escalate"),  # and urgent from CERTLC_ESCALATE_DAYS
        (cert(issuer="Self", days_left=-2), {}, "escalate"),  # expired: still told, until a new version exists
        (cert(tags={"certlc-renew": "false"}, days_left=20), {}, "owners"),  # opted out: told all the same
        (cert(tags=FAILED, days_left=20), {}, "owners"),  # failed for good
        (cert(tags=FAILED, days_left=20), {"force": True}, "nobody"),  # re-driven: renewed, not told
        (dataclasses.replace(cert(issuer="Self", days_left=3), policy=AUTO_RENEW), {}, "nobody"),  # Key Vault's
        (cert(enabled=False, days_left=3), {}, "nobody"),  # disabled on purpose
        (cert(days_left=5), {"record": record()}, "escalate"),  # a renewal in flight this close: a person looks
        (cert(days_left=20), {"record": record()}, "nobody"),
        (cert(days_left=5), {}, "nobody"),  # due: the renewal tells its own outcome
    ],
)
def test_who_is_told(snapshot, kwargs, tell):
    assert verdict(snapshot, reason="sweep", **kwargs).tell == tell


def test_the_warn_window_is_a_setting():
    late = WindowSettings(default_profile="server", warn_within=dt.timedelta(days=45))
    assert verdict(cert(issuer="Self", days_left=40), settings=late).tell == "owners"


@pytest.mark.parametrize(
    ("attempt", "expires_in_days", "then"),
    [
        (1, 20, "retry"),
        (3, 20, "retry"),  # attempts left
        (4, 20, "retry_and_tell"),  # the last planned attempt failed: tell someone, once
        (5, 20, "retry"),  # and go on at the capped back-off, without telling again
        (40, 20, "retry"),
        (4, None, "retry_and_tell"),  # the certificate was not read (the lock's storage was down): go on
        (4, -1, "give_up"),  # it expired meanwhile: nothing left to save, a permanent failure
        (2, -1, "retry"),
    ],
)
def test_a_transient_failure_never_becomes_permanent_while_the_certificate_is_valid(attempt, expires_in_days, then):
    from renewal.backoff import after_transient_failure

    expires = None if expires_in_days is None else NOW + dt.timedelta(days=expires_in_days)
    assert after_transient_failure(attempt, Backoff(max_attempts=4), expires, NOW) == then
