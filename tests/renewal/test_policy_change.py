"""The change renewal's pure steps: the change file's parse, what really changes, the new SDK policy, and what each CA
adapter's profile refuses (renewal/policy_change.py)."""

from __future__ import annotations

import pytest
from azure.keyvault.certificates import CertificatePolicy, CertificatePolicyAction, LifetimeAction

from renewal.ca.local import LocalCA, Profile
from renewal.keyvault import PendingOperation
from renewal.policy_change import (
    CaLimits,
    PolicyChange,
    PolicyFileError,
    ca_limits,
    change_from_json,
    change_refused,
    changed_policy,
    describe,
    key_change_refused,
    old_values,
    under_way,
    what_changes,
)


def policy(**overrides: object) -> CertificatePolicy:
    given = {
        "issuer_name": "Unknown",
        "subject": "CN=shop.example.com",
        "san_dns_names": ["shop.example.com"],
        "key_type": "RSA",
        "key_size": 2048,
        "validity_in_months": 12,
        "exportable": True,
        "reuse_key": False,
        "content_type": "application/x-pkcs12",
        "lifetime_actions": [LifetimeAction(CertificatePolicyAction.email_contacts, lifetime_percentage=80)],
    }
    return CertificatePolicy(**(given | overrides))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"dns": ["A.example.com.", "b.example.com", "a.example.com"]}',
            PolicyChange(dns=("a.example.com", "b.example.com")),
        ),
        ('{"dns": ["*.example.com"]}', PolicyChange(dns=("*.example.com",))),
        ('{"key": "rsa-3072"}', PolicyChange(key="RSA-3072")),
        ('{"key": "EC-P384", "validity_months": 3}', PolicyChange(key="EC-P384", validity_months=3)),
        ('{"subject": " CN=x.example.com,O=Shop "}', PolicyChange(subject="CN=x.example.com,O=Shop")),
    ],
)
def test_a_change_file_parses_to_what_it_gives(text: str, expected: PolicyChange) -> None:
    assert change_from_json(text) == expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("not json", "not JSON"),
        ('["dns"]', "JSON object"),
        ("{}", "changes nothing"),
        ('{"dns": ["a.example.com"], "sans": []}', "'sans'"),
        ('{"dns": []}', '"dns" is empty'),
        ('{"dns": "a.example.com"}', '"dns" must be a list'),
        ('{"dns": ["a..example.com"]}', "'a..example.com'"),
        ('{"dns": ["-a.example.com"]}', "'-a.example.com'"),
        ('{"dns": ["a_b.example.com"]}', "'a_b.example.com'"),
        ('{"dns": ["*"]}', "'*'"),
        ('{"dns": ["a.*.example.com"]}', "'a.*.example.com'"),
        ('{"dns": [' + '"' + "a" * 64 + '.example.com"]}', '"dns" has'),
        ('{"key": "RSA-1024"}', "\"key\" 'RSA-1024'"),
        ('{"key": "EC-P521"}', "EC-P521"),
        ('{"key": 2048}', '"key" 2048'),
        ('{"validity_months": 0}', '"validity_months" 0'),
        ('{"validity_months": "12"}', "\"validity_months\" '12'"),
        ('{"validity_months": true}', '"validity_months" True'),
        ('{"validity_months": 1.5}', '"validity_months" 1.5'),
        ('{"subject": ""}', '"subject"'),
        ('{"subject": "shop.example.com"}', "\"subject\" 'shop.example.com'"),
        ('{"x509_props": {"subject": "CN=a"}, "key_props": {"kty": "RSA"}}', "Key Vault's policy JSON"),
        ('{"x509CertificateProperties": {}}', "Key Vault's policy JSON"),
    ],
)
def test_a_bad_change_file_is_refused_naming_the_field(text: str, names: str) -> None:
    with pytest.raises(PolicyFileError) as refused:
        change_from_json(text)
    assert names in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("change", "really"),
    [
        (PolicyChange(dns=("shop.example.com",)), PolicyChange()),
        (
            PolicyChange(dns=("shop.example.com", "www.example.com")),
            PolicyChange(dns=("shop.example.com", "www.example.com")),
        ),
        (PolicyChange(key="RSA-2048", validity_months=12), PolicyChange()),
        (PolicyChange(key="RSA-4096", validity_months=12), PolicyChange(key="RSA-4096")),
        (PolicyChange(subject="CN=shop.example.com", validity_months=3), PolicyChange(validity_months=3)),
    ],
)
def test_only_what_differs_from_the_policy_changes(change: PolicyChange, really: PolicyChange) -> None:
    assert what_changes(policy(), change) == really


def test_the_new_policy_replaces_what_is_given_and_keeps_the_rest() -> None:
    before = policy(reuse_key=True)
    change = PolicyChange(subject="CN=www.example.com", dns=("www.example.com", "shop.example.com"), key="RSA-3072")
    after = changed_policy(before, change)
    assert (after.subject, after.san_dns_names, after.key_size) == (
        "CN=www.example.com",
        ["www.example.com", "shop.example.com"],
        3072,
    )
    kept = ("issuer_name", "reuse_key", "exportable", "validity_in_months", "content_type", "key_type")
    assert {f: getattr(after, f) for f in kept} == {f: getattr(before, f) for f in kept}
    assert [a.lifetime_percentage for a in after.lifetime_actions] == [80]


def test_a_new_key_type_drops_the_other_types_field_and_keeps_hsm() -> None:
    to_ec = changed_policy(policy(key_type="RSA-HSM"), PolicyChange(key="EC-P384"))
    assert (str(to_ec.key_type), to_ec.key_size, str(to_ec.key_curve_name)) == ("EC-HSM", None, "P-384")
    to_rsa = changed_policy(to_ec, PolicyChange(key="RSA-4096", validity_months=6))
    assert (str(to_rsa.key_type), to_rsa.key_size, to_rsa.key_curve_name) == ("RSA-HSM", 4096, None)
    assert to_rsa.validity_in_months == 6


def test_the_change_is_described_with_the_values_it_replaces() -> None:
    change = PolicyChange(dns=("a.example.com", "b.example.com"), key="EC-P256")
    old = old_values(policy(), change)
    assert old == {"dns": ("shop.example.com",), "key": "RSA-2048"}
    assert describe(old, change) == "dns [shop.example.com] -> [a.example.com, b.example.com]; key RSA-2048 -> EC-P256"


SERVER_90 = CaLimits("local", "server", validity_days=90)
ACME = CaLimits("acme", "", validity_fixed="an ACME CA sets the validity itself")
ADCS = CaLimits("adcs", "WebServer", validity_fixed="AD CS issues the validity period of template 'WebServer'")


@pytest.mark.parametrize(
    ("change", "limits", "refusal"),
    [
        (PolicyChange(validity_months=3), SERVER_90, None),
        (PolicyChange(validity_months=12), SERVER_90, "issues 90 days (about 3 months): validity_months 12 is beyond"),
        (PolicyChange(validity_months=1), SERVER_90, "validity_months 1 is short of"),
        (PolicyChange(validity_months=12), CaLimits("cfssl", "server", validity_days=365), None),
        (PolicyChange(validity_months=24), CaLimits("cfssl", "server", validity_days=365), "about 12 months"),
        (PolicyChange(validity_months=3), ACME, "an ACME CA sets the validity itself; leave validity_months out"),
        (PolicyChange(validity_months=24), ADCS, "template 'WebServer'"),
        (PolicyChange(validity_months=3), CaLimits("other", "p"), "does not say what validity it issues"),
        (PolicyChange(dns=("a.example.com",), key="EC-P384"), ACME, None),
        (PolicyChange(dns=("a.example.com",), key="RSA-4096"), ADCS, None),
        (PolicyChange(dns=("a.example.com",)), CaLimits("local", "gone", problem="no profile 'gone'"), "no profile"),
        (PolicyChange(), SERVER_90, None),
    ],
)
def test_what_each_ca_refuses(change: PolicyChange, limits: CaLimits, refusal: str | None) -> None:
    refused = change_refused(change, limits)
    if refusal is None:
        assert refused is None
    else:
        assert refused is not None and refusal in refused


def test_the_local_cas_profile_and_cfssls_expiry_are_what_it_issues(tmp_path) -> None:
    local = LocalCA(tmp_path, {"server": Profile(validity_days=30)}, create=True)
    assert ca_limits("local", local, "server") == CaLimits("local", "server", validity_days=30)
    assert "offers no profile 'client' (server)" in ca_limits("local", local, "client").problem

    class Cfssl:  # the adapter's cached /api/v1/cfssl/info answer
        name = "cfssl"

        def _profile_info(self, profile: str) -> dict:
            return {"expiry": {"server": "2160h0m0s", "long": "8760h"}.get(profile, "")}

    assert ca_limits("cfssl", Cfssl(), "server").validity_days == 90
    assert ca_limits("cfssl", Cfssl(), "long").validity_days == 365
    assert ca_limits("cfssl", Cfssl(), "none").validity_days is None


def test_a_key_change_waits_for_key_reuse_off_and_for_a_pending_operation() -> None:
    assert key_change_refused(policy(reuse_key=True), PolicyChange(key="RSA-3072")) is not None
    assert key_change_refused(policy(reuse_key=True), PolicyChange(dns=("a.example.com",))) is None
    assert key_change_refused(policy(reuse_key=False), PolicyChange(key="RSA-3072")) is None
    assert under_way(PendingOperation("r1", "inprogress", None)) is not None
    assert under_way(PendingOperation("r1", "completed", None)) is None
    assert under_way(None) is None
