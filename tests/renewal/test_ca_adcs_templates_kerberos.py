"""The AD CS template lookup's Kerberos bind (CERTLC_ADCS_LDAP_AUTH=kerberos): ldap3's SASL GSSAPI with the worker's
ticket, against a real OpenLDAP slapd holding ``ldap/localhost`` in its keytab and mapping the worker's principal to
the directory account, with tickets from a real MIT KDC on loopback. Each test's Kerberos variables are set with
``monkeypatch``, so none leak into other tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from localazure.ports import LOOPBACK

from renewal.ca.adcs_templates import template_directory_from_env
from renewal.ca.base import CaConfigError
from tests.fixtures.kdc import Kdc
from tests.fixtures.ldap import BIND_DN, TEMPLATES, Slapd

pytest.importorskip("gssapi", reason="the kerberos extra (requirements-kerberos.txt) is not installed")
pytestmark = [pytest.mark.slapd, pytest.mark.timeout(60)]
V2_NAME, _, V2_OID, _ = TEMPLATES[0]


def _as_worker(monkeypatch: pytest.MonkeyPatch, kdc: Kdc, workdir: Path, keytab: Path | None) -> None:
    """The worker's Kerberos environment, for this test only."""
    for name, value in kdc.client_env(workdir, keytab).items():
        monkeypatch.setenv(name, value)


def _resolve(url: str, server: Slapd) -> str:
    """The template name, through the app settings a worker binding with its ticket has: no account, no password."""
    env = {
        "CERTLC_ADCS_LDAP_URL": url,
        "CERTLC_ADCS_LDAP_AUTH": "kerberos",
        "CERTLC_ADCS_LDAP_CA_BUNDLE": str(server.ca_pem),
    }
    directory = template_directory_from_env(env, 5)
    assert directory is not None
    return directory.resolve(V2_OID)  # type: ignore[return-value]


@pytest.mark.parametrize("url", ["ldaps_url", "starttls_url"])
def test_the_workers_ticket_binds_as_the_mapped_account_and_finds_the_template(
    slapd_kerberos: Slapd, kdc: Kdc, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str
) -> None:
    _as_worker(monkeypatch, kdc, tmp_path, kdc.client_keytab)
    binds = slapd_kerberos.gssapi_binds()

    assert _resolve(getattr(slapd_kerberos, url), slapd_kerberos) == V2_NAME
    assert slapd_kerberos.gssapi_binds() == [*binds, BIND_DN.lower()], "one SASL GSSAPI bind, as the mapped account"


def test_without_a_ticket_or_keytab_the_lookup_fails_for_good_naming_what_to_set(
    slapd_kerberos: Slapd, kdc: Kdc, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _as_worker(monkeypatch, kdc, tmp_path, None)
    binds = slapd_kerberos.gssapi_binds()

    with pytest.raises(CaConfigError) as raised:
        _resolve(slapd_kerberos.ldaps_url, slapd_kerberos)

    for words in (V2_OID, "Kerberos", "no Kerberos ticket", "KRB5_CLIENT_KTNAME", "KRB5CCNAME"):
        assert words in str(raised.value)
    assert slapd_kerberos.gssapi_binds() == binds


def test_a_directory_named_by_ip_address_has_no_spn_and_the_error_says_so(
    slapd_kerberos: Slapd, kdc: Kdc, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _as_worker(monkeypatch, kdc, tmp_path, kdc.client_keytab)
    by_address = slapd_kerberos.ldaps_url.replace(slapd_kerberos.host, LOOPBACK)

    with pytest.raises(CaConfigError, match=rf"not found in Kerberos database.*ldap/{LOOPBACK}"):
        _resolve(by_address, slapd_kerberos)
