"""AD CS template OID → name from the directory: the decisions as tables, then the lookup against a real OpenLDAP
slapd holding MS-CRTD template objects, the AD CS adapter with the local /certsrv server, and a renewal of an
OID-only certificate through ``certlc renew``."""

from __future__ import annotations

import datetime as dt
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from localazure.emulators import adcs
from localazure.ports import LOOPBACK, free_port

from renewal.ca.adcs import AdcsAuthority
from renewal.ca.adcs_templates import (
    CACHE_SECONDS,
    TEMPLATES_CONTAINER,
    DirectorySettings,
    Endpoint,
    Found,
    NotFound,
    Refused,
    TemplateDirectory,
    Unreachable,
    bind_method,
    endpoint,
    template_directory_from_env,
    template_verdict,
)
from renewal.ca.base import CaConfigError, CaUnavailable, Denied, Issued
from renewal.ca.local import Profile
from tests.fixtures.ldap import (
    BIND_DN,
    BIND_PASSWORD,
    CONFIGURATION_NC,
    TEMPLATES,
    Slapd,
    start_slapd,
)
from tests.fixtures.servers import make_csr, verify_chain

V2_NAME, V2_DISPLAY, V2_OID, _ = TEMPLATES[0]
V3_NAME, _, V3_OID, _ = TEMPLATES[1]
UNKNOWN_OID = "1.3.6.1.4.1.311.21.8.5934178.1234567.1.2.3.4.999"
pytestmark = pytest.mark.timeout(60)


# --- decisions -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lookup", "outcome", "reason", "words"),
    [
        (Found("WebServerV2", "Web Server v2"), "submit", "template_found", ["WebServerV2", "Web Server v2"]),
        (NotFound("CN=Certificate Templates,... at ldaps://dc"), "denied", "template_unknown", ["certlc-profile"]),
        (Unreachable("the directory at ldaps://dc is unreachable"), "unavailable", "directory_unreachable", ["dc"]),
        (Refused("the directory refused the simple bind"), "misconfigured", "directory_refused", ["simple bind"]),
    ],
)
def test_the_lookup_decides_with_a_reason(lookup, outcome, reason, words) -> None:
    verdict = template_verdict("1.2.3.4", lookup)

    assert (verdict.outcome, verdict.reason) == (outcome, reason)
    assert verdict.name == (lookup.name if isinstance(lookup, Found) else None)
    for word in ["1.2.3.4", *words]:
        assert word in verdict.message


@pytest.mark.parametrize(
    ("url", "bundle", "expected"),
    [
        ("ldaps://dc.corp.example", False, Endpoint("dc.corp.example", 636, "ldaps")),
        ("ldap://dc.corp.example", False, Endpoint("dc.corp.example", 389, "starttls")),
        ("LDAP://dc.corp.example:3268/", True, Endpoint("dc.corp.example", 3268, "starttls")),
        ("ldap://127.0.0.1:3389", False, Endpoint("127.0.0.1", 3389, "plain")),
        ("ldap://localhost:3389", True, Endpoint("localhost", 3389, "starttls")),
        ("ldaps://[::1]:636", False, Endpoint("::1", 636, "ldaps")),
    ],
)
def test_ldap_urls_mean_ldaps_or_starttls_and_plain_only_on_loopback(url, bundle, expected) -> None:
    assert endpoint(url, has_ca_bundle=bundle) == expected


@pytest.mark.parametrize(
    "url", ["https://dc.corp.example", "dc.corp.example", "ldap:///", "ldaps://dc:notaport", "ldap://dc/DC=corp"]
)
def test_urls_that_are_not_an_ldap_server_are_refused(url) -> None:
    with pytest.raises(CaConfigError, match="CERTLC_ADCS_LDAP_URL"):
        endpoint(url, has_ca_bundle=False)


@pytest.mark.parametrize(
    ("forced", "username", "expected"),
    [
        ("", "CORP\\svc-certlc", "ntlm"),
        ("", "svc-certlc@corp.example", "simple"),
        ("", "CN=svc-certlc,CN=Users,DC=corp,DC=example", "simple"),
        ("", None, "kerberos"),
        ("Simple", "CORP\\svc-certlc", "simple"),
        ("kerberos", "svc-certlc@corp.example", "kerberos"),
    ],
)
def test_the_bind_follows_the_accounts_form_unless_forced(forced, username, expected) -> None:
    assert bind_method(forced, username) == expected


def test_an_account_of_no_known_form_or_an_unknown_bind_is_a_configuration_error() -> None:
    with pytest.raises(CaConfigError, match="CERTLC_ADCS_LDAP_AUTH"):
        bind_method("", "svc-certlc")
    with pytest.raises(CaConfigError, match="'gssapi-ish' is not one of simple, ntlm, kerberos"):
        bind_method("gssapi-ish", "CORP\\svc-certlc")


def test_settings_without_a_url_keep_oid_profiles_refused_and_a_bind_needs_its_password(tmp_path) -> None:
    assert template_directory_from_env({"CERTLC_ADCS_USERNAME": "CORP\\svc"}, 5) is None
    with pytest.raises(CaConfigError, match="CERTLC_ADCS_PASSWORD"):
        template_directory_from_env({"CERTLC_ADCS_LDAP_URL": "ldaps://dc", "CERTLC_ADCS_USERNAME": "CORP\\svc"}, 5)
    env = {"CERTLC_ADCS_LDAP_URL": "ldaps://dc", "CERTLC_ADCS_USERNAME": "u@corp", "CERTLC_ADCS_PASSWORD": "pw"}
    web, directory_ca = tmp_path / "adcs.pem", tmp_path / "ldap.pem"
    web.write_bytes(trustme.CA().cert_pem.bytes())
    directory_ca.write_bytes(trustme.CA().cert_pem.bytes())
    directory = template_directory_from_env(env | {"CERTLC_ADCS_CA_BUNDLE": str(web)}, 7)
    assert directory is not None
    assert (directory.settings.bind, directory.settings.ca_bundle, directory.settings.timeout) == (
        "simple",
        str(web),
        7,
    )
    assert "pw" not in repr(directory.settings)
    own = template_directory_from_env(
        env | {"CERTLC_ADCS_CA_BUNDLE": str(web), "CERTLC_ADCS_LDAP_CA_BUNDLE": str(directory_ca)}, 7
    )
    assert own is not None and own.settings.ca_bundle == str(directory_ca)
    as_text = template_directory_from_env(env | {"CERTLC_ADCS_LDAP_CA_BUNDLE": directory_ca.read_text()}, 7)
    assert as_text is not None and Path(as_text.settings.ca_bundle or "").read_text() == directory_ca.read_text()
    with pytest.raises(CaConfigError, match=r"^CERTLC_ADCS_LDAP_CA_BUNDLE: cannot read the file /nowhere\.pem"):
        template_directory_from_env(env | {"CERTLC_ADCS_LDAP_CA_BUNDLE": "/nowhere.pem"}, 7)


def test_a_kerberos_bind_without_the_gssapi_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Functions app has no gssapi (it needs Kerberos headers to build): the setting says what is missing."""
    monkeypatch.setitem(sys.modules, "gssapi", None)  # import gssapi now raises ImportError, installed or not
    with pytest.raises(CaConfigError, match="gssapi package"):
        template_directory_from_env({"CERTLC_ADCS_LDAP_URL": "ldaps://dc"}, 5)


def test_the_ntlm_bind_can_hash_the_password_where_openssl_has_no_md4() -> None:
    """MS-NLMP 4.2.4.1.1's NTOWFv2 for User/Domain/Password: ldap3 needs pycryptodome's MD4 under OpenSSL 3."""
    from ldap3.utils.ntlm import NtlmClient

    client = NtlmClient("Domain", "User", "Password")

    assert client.ntowf_v2().hex() == "0c868a403bfd7a93a3001ef22ef02e3f"


def test_without_a_directory_an_oid_profile_is_refused_naming_the_setting_that_fixes_it() -> None:
    ca = AdcsAuthority(f"{LOOPBACK}:{free_port()}", auth_method="basic", username="u", password="p")

    result = ca.submit(make_csr("oid.corp.test"), V2_OID)

    assert isinstance(result, Denied)
    assert V2_OID in result.reason and "CERTLC_ADCS_LDAP_URL" in result.reason and "certlc-profile" in result.reason


# --- against slapd -----------------------------------------------------------------------------------------------


def _directory(server: Slapd, clock=None, **overrides: object) -> TemplateDirectory:
    options: dict[str, object] = {
        "url": server.ldaps_url,
        "bind": "simple",
        "username": BIND_DN,
        "password": BIND_PASSWORD,
        "ca_bundle": str(server.ca_pem),
        "timeout": 5,
    }
    settings = DirectorySettings(**{**options, **overrides})  # type: ignore[arg-type]
    return TemplateDirectory(settings, clock=clock) if clock else TemplateDirectory(settings)


@pytest.fixture(scope="module")
def certsrv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[adcs.RunningAdcs]:
    """The local /certsrv server offering the directory's templates by name, to the directory's account: one
    service account for both, as in a domain (slapd takes a simple bind by DN only, so the account is a DN)."""
    templates = {name: Profile() for name, *_ in TEMPLATES}
    running = adcs.start(
        tmp_path_factory.mktemp("adcs-v2"), username=BIND_DN, password=BIND_PASSWORD, templates=templates
    )
    yield running
    running.stop()


def _adcs(certsrv: adcs.RunningAdcs, templates: TemplateDirectory | None) -> AdcsAuthority:
    return AdcsAuthority(
        certsrv.server,
        auth_method="basic",
        username=BIND_DN,
        password=BIND_PASSWORD,
        ca_bundle=certsrv.ca_bundle,
        templates=templates,
    )


@pytest.mark.parametrize("url", ["ldaps_url", "starttls_url"])
def test_the_oid_is_found_over_ldaps_and_starttls_with_the_base_from_the_rootdse(slapd, url) -> None:
    assert _directory(slapd, url=getattr(slapd, url)).lookup(V2_OID) == Found(V2_NAME, V2_DISPLAY)


def test_an_explicit_base_is_used_as_given(slapd) -> None:
    assert _directory(slapd, base=CONFIGURATION_NC).lookup(V3_OID).name == V3_NAME
    elsewhere = "CN=Configuration,DC=other,DC=example"
    assert _directory(slapd, base=elsewhere).lookup(V3_OID) == NotFound(
        f"{TEMPLATES_CONTAINER},{elsewhere} at {slapd.ldaps_url}"
    )


def test_plain_ldap_on_loopback_without_a_ca_bundle(slapd) -> None:
    assert _directory(slapd, url=slapd.starttls_url, ca_bundle=None).lookup(V2_OID).name == V2_NAME


def test_an_oid_only_certificate_is_issued_under_the_directorys_template_name(slapd, certsrv) -> None:
    searches = slapd.template_searches()

    result = _adcs(certsrv, _directory(slapd)).submit(make_csr("v2.corp.test"), V2_OID)

    assert isinstance(result, Issued)
    verify_chain(result.chain_pem, certsrv.ca.certificate_pem, "v2.corp.test")
    assert slapd.template_searches() == searches + 1


def test_an_unknown_oid_is_denied_naming_the_oid_where_it_looked_and_the_tag(slapd, certsrv) -> None:
    result = _adcs(certsrv, _directory(slapd)).submit(make_csr("x.corp.test"), UNKNOWN_OID)

    assert isinstance(result, Denied)
    for words in (UNKNOWN_OID, f"{TEMPLATES_CONTAINER},{CONFIGURATION_NC}", slapd.ldaps_url, "certlc-profile"):
        assert words in result.reason


def test_an_oid_in_the_filter_is_a_value_never_filter_syntax(slapd) -> None:
    directory = _directory(slapd)

    assert isinstance(directory.lookup("*"), NotFound)
    assert isinstance(directory.lookup(f"{UNKNOWN_OID})(cn=*"), NotFound)


def test_the_name_is_cached_and_looked_up_again_after_the_ttl(slapd) -> None:
    now = [1000.0]
    directory = _directory(slapd, clock=lambda: now[0])
    binds, searches = slapd.binds(), slapd.template_searches()

    assert directory.lookup(V3_OID).name == V3_NAME
    assert (slapd.binds(), slapd.template_searches()) == (binds + 1, searches + 1)
    now[0] += CACHE_SECONDS - 1
    assert directory.lookup(V3_OID).name == V3_NAME
    assert (slapd.binds(), slapd.template_searches()) == (binds + 1, searches + 1), "a cache hit makes no LDAP call"
    now[0] += 2
    assert directory.lookup(V3_OID).name == V3_NAME
    assert slapd.template_searches() == searches + 2


def test_an_unknown_oid_is_not_cached_so_a_new_template_is_found(slapd) -> None:
    directory = _directory(slapd)
    searches = slapd.template_searches()

    directory.lookup(UNKNOWN_OID)
    directory.lookup(UNKNOWN_OID)

    assert slapd.template_searches() == searches + 2


def test_a_name_profile_never_touches_the_directory(slapd, certsrv) -> None:
    binds, searches = slapd.binds(), slapd.template_searches()

    result = _adcs(certsrv, _directory(slapd)).submit(make_csr("v1.corp.test"), "WebServer")

    assert isinstance(result, Issued)
    assert (slapd.binds(), slapd.template_searches()) == (binds, searches)


def test_a_wrong_password_is_a_configuration_error_without_the_password(slapd, certsrv) -> None:
    wrong = "Not-the-Directory-pa55"

    with pytest.raises(CaConfigError) as raised:
        _adcs(certsrv, _directory(slapd, password=wrong)).submit(make_csr("pw.corp.test"), V2_OID)

    assert "invalidCredentials" in str(raised.value) and BIND_DN in str(raised.value)
    assert wrong not in str(raised.value)


def test_an_untrusted_directory_certificate_is_a_configuration_error(slapd, tmp_path) -> None:
    from tests.fixtures.mail import make_tls_material

    other = make_tls_material(tmp_path).ca_pem
    for url in (slapd.ldaps_url, slapd.starttls_url):
        with pytest.raises(CaConfigError, match=r"CERTIFICATE_VERIFY_FAILED.*CERTLC_ADCS_LDAP_CA_BUNDLE"):
            _directory(slapd, url=url, ca_bundle=str(other)).resolve(V2_OID)


def test_slapd_refuses_an_ntlm_bind_as_a_configuration_error(slapd) -> None:
    """slapd has no NTLM (Sicily) bind: this shows the bind is asked for, not that a domain controller takes it."""
    with pytest.raises(CaConfigError, match=r"ntlm bind as CORP\\svc-certlc \(authMethodNotSupported\)"):
        _directory(slapd, bind="ntlm", username="CORP\\svc-certlc").resolve(V2_OID)


def test_a_stopped_directory_is_transient(tmp_path, certsrv) -> None:
    own = start_slapd(tmp_path / "slapd")
    try:
        ca = _adcs(certsrv, _directory(own))
        assert isinstance(ca.submit(make_csr("up.corp.test"), V2_OID), Issued)
    finally:
        own.stop()

    with pytest.raises(CaUnavailable, match=f"{V3_OID}.*{own.ldaps_url} is unreachable"):
        ca.submit(make_csr("down.corp.test"), V3_OID)
    assert isinstance(ca.submit(make_csr("cached.corp.test"), V2_OID), Issued), "a cached name needs no directory"


def test_a_directory_that_does_not_answer_in_time_is_transient(slapd) -> None:
    with socket.create_server((LOOPBACK, 0)) as silent:  # accepts connections, never answers
        url = f"ldaps://{LOOPBACK}:{silent.getsockname()[1]}"
        with pytest.raises(CaUnavailable, match=r"unreachable|stopped answering"):
            _directory(slapd, url=url, timeout=1).resolve(V2_OID)


# --- through certlc renew on the local stack ----------------------------------------------------------------------


@pytest.fixture(params=["file paths", "PEM text"])
def adcs_settings(slapd, certsrv, monkeypatch, request) -> Iterator[None]:
    """CERTLC_CA=adcs with the template directory, as app settings (the environment wins over the file); the two
    CA bundles as files, or as their PEM text, as in Azure, where the app has no file of its own to point at."""
    from renewal import handlers

    web_ca, directory_ca = certsrv.ca_bundle, str(slapd.ca_pem)
    if request.param == "PEM text":
        web_ca, directory_ca = Path(web_ca).read_text(), Path(directory_ca).read_text()
    settings = {
        "CERTLC_CA": "adcs",
        "CERTLC_CA_PROFILE": "",
        "CERTLC_ADCS_SERVER": certsrv.server,
        "CERTLC_ADCS_AUTH": "basic",
        "CERTLC_ADCS_USERNAME": BIND_DN,
        "CERTLC_ADCS_PASSWORD": BIND_PASSWORD,
        "CERTLC_ADCS_CA_BUNDLE": web_ca,
        "CERTLC_ADCS_LDAP_URL": slapd.ldaps_url,
        "CERTLC_ADCS_LDAP_CA_BUNDLE": directory_ca,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    handlers.reset_runtime()
    yield
    handlers.reset_runtime()


def test_certlc_renew_renews_an_oid_only_certificate_with_no_tag(stack, slapd, certsrv, adcs_settings, capsys):
    from certlc.cli import main as certlc
    from renewal.x509info import adcs_template, load_certificate
    from tests.pipeline.helpers import client, seed, unique, versions

    name = unique("v2-template")
    template = x509.MSCertificateTemplate(x509.ObjectIdentifier(V2_OID), major_version=100, minor_version=4)
    seed(stack, name, days_left=60, extra=(template,))
    before = client(stack).get_certificate(name)
    assert adcs_template(load_certificate(before.cer)) == V2_OID and not before.properties.tags
    searches = slapd.template_searches()

    code = certlc(["--settings", str(stack.settings_path), "renew", name, "--vault", "kv1", "--force", "-o", "json"])

    outcome = json.loads(capsys.readouterr().out)
    assert (code, outcome["status"]) == (0, "renewed"), outcome
    assert len(versions(stack, name)) == 2
    after = client(stack).get_certificate(name)
    leaf = x509.load_der_x509_certificate(bytes(after.cer))
    assert leaf.issuer == x509.load_pem_x509_certificate(certsrv.ca.certificate_pem.encode()).subject
    assert leaf.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=60)
    assert slapd.template_searches() == searches + 1
