"""Each CA adapter revokes a certificate it issued, proven at the CA itself: pebble's management interface, cfssl's
certificate database, the local CA's signed CRL, and the CRL the AD CS emulator publishes after its operator acts."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
import requests
from cryptography import x509
from localazure.emulators.adcs import RunningAdcs
from localazure.ports import free_port

from renewal.ca.acme import AcmeAuthority, Http01ServerSolver
from renewal.ca.adcs import AdcsAuthority
from renewal.ca.base import AwaitingPerson, CaError, CaUnavailable, Issued, Revoked
from renewal.ca.cfssl import CfsslAuthority
from renewal.ca.local import LocalCA
from renewal.runtime import ca_factory
from tests.fixtures.adcs import ADCS_PASSWORD, ADCS_USERNAME
from tests.fixtures.servers import make_csr

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _leaf(result: object) -> x509.Certificate:
    assert isinstance(result, Issued)
    return x509.load_pem_x509_certificate(result.chain_pem[0].encode())


def _pem(certificate: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return certificate.public_bytes(Encoding.PEM).decode()


def _get(url: str, ca_bundle: str | Path) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would win over verify=
        return session.get(url, verify=str(ca_bundle), timeout=10)


def _crl_entry(crl_der: bytes, issuer: x509.Certificate, serial: int) -> x509.RevokedCertificate | None:
    """The CRL's entry for ``serial``, once its signature verifies with the issuer's public key."""
    crl = x509.load_der_x509_crl(crl_der)
    assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    assert crl.issuer == issuer.subject
    return crl.get_revoked_certificate_by_serial_number(serial)


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags:
    return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason


def _cdp_urls(certificate: x509.Certificate) -> list[str]:
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return [name.value for point in points for name in point.full_name or ()]


# -- ACME (pebble) ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def solver():
    with Http01ServerSolver() as running:
        yield running


def _acme(pebble, solver, key: Path) -> AcmeAuthority:
    return AcmeAuthority(pebble.directory_url, account_key_path=key, ca_bundle=str(pebble.ca_bundle), solver=solver)


def _pebble_status(pebble, certificate: x509.Certificate) -> str:
    url = f"https://127.0.0.1:{pebble.management_port}/cert-status-by-serial/{certificate.serial_number:x}"
    answer = _get(url, pebble.ca_bundle)
    answer.raise_for_status()
    return answer.json()["Status"]


@pytest.mark.pebble
def test_acme_revokes_at_pebble_and_a_second_revoke_answers_already_revoked(pebble, solver, tmp_path) -> None:
    ca = _acme(pebble, solver, tmp_path / "account.pem")
    leaf = _leaf(ca.submit(make_csr("revoke.certlc.test"), ""))
    assert _pebble_status(pebble, leaf) == "Valid"

    result = ca.revoke(_pem(leaf), "keyCompromise")

    assert result == Revoked(f"{leaf.serial_number:x}", "keyCompromise")
    assert _pebble_status(pebble, leaf) == "Revoked"
    assert ca.revoke(_pem(leaf), "keyCompromise") == Revoked(
        f"{leaf.serial_number:x}", "keyCompromise", "already revoked"
    )


@pytest.mark.pebble
def test_acme_revoke_from_an_account_that_did_not_order_it_is_refused(pebble, solver, tmp_path) -> None:
    leaf = _leaf(_acme(pebble, solver, tmp_path / "owner.pem").submit(make_csr("owned.certlc.test"), ""))

    with pytest.raises(CaError, match="unauthorized") as refused:
        _acme(pebble, solver, tmp_path / "stranger.pem").revoke(_pem(leaf), "superseded")

    assert not isinstance(refused.value, CaUnavailable)  # a refusal is not retried
    assert f"{leaf.serial_number:x}" in str(refused.value)
    assert _pebble_status(pebble, leaf) == "Valid"


def test_acme_server_down_is_unavailable_and_an_unknown_reason_never_reaches_a_ca(tmp_path) -> None:
    local = LocalCA(tmp_path / "ca", create=True)
    leaf = _leaf(local.submit(make_csr("down.certlc.test"), "server"))
    ca = AcmeAuthority(f"https://127.0.0.1:{free_port()}/dir", account_key_path=tmp_path / "account.pem")

    with pytest.raises(CaUnavailable, match="unreachable"):
        ca.revoke(_pem(leaf), "superseded")
    with pytest.raises(CaError, match="'caCompromise' is not one of: unspecified, keyCompromise"):
        ca.revoke(_pem(leaf), "caCompromise")


# -- cfssl -----------------------------------------------------------------------------------------------------------


def _cfssl_row(server, certificate: x509.Certificate) -> tuple[str, int, str | None]:
    with sqlite3.connect(server.database) as db:
        rows = db.execute(
            "SELECT status, reason, revoked_at FROM certificates WHERE serial_number = ?",
            (str(certificate.serial_number),),
        ).fetchall()
    assert len(rows) == 1, f"cfssl recorded {len(rows)} rows for serial {certificate.serial_number}"
    return rows[0]


@pytest.mark.cfssl
def test_cfssl_revoke_marks_its_database_row_and_a_second_revoke_is_accepted_again(cfssl_server) -> None:
    ca = CfsslAuthority(cfssl_server.url)
    leaf = _leaf(ca.submit(make_csr("revoke.certlc.test"), "server"))
    assert _cfssl_row(cfssl_server, leaf)[:2] == ("good", 0)  # cfssl records what it signs

    result = ca.revoke(_pem(leaf), "keyCompromise")

    assert result == Revoked(f"{leaf.serial_number:x}", "keyCompromise")
    status, reason, revoked_at = _cfssl_row(cfssl_server, leaf)
    assert (status, reason) == ("revoked", 1)
    assert revoked_at and not revoked_at.startswith("0001")
    # cfssl 1.2 cannot say "already revoked": it accepts the second revoke and records the new reason.
    assert ca.revoke(_pem(leaf), "superseded") == Revoked(f"{leaf.serial_number:x}", "superseded")
    assert _cfssl_row(cfssl_server, leaf)[:2] == ("revoked", 4)


@pytest.mark.cfssl
def test_cfssl_refuses_to_revoke_a_certificate_it_did_not_sign(cfssl_server, tmp_path) -> None:
    stranger = _leaf(LocalCA(tmp_path / "ca", create=True).submit(make_csr("elsewhere.certlc.test"), "server"))

    with pytest.raises(CaError, match="certificate not found") as refused:
        CfsslAuthority(cfssl_server.url).revoke(_pem(stranger), "keyCompromise")

    assert not isinstance(refused.value, CaUnavailable)
    assert f"did not revoke certificate {stranger.serial_number:x}" in str(refused.value)


# -- the local CA ----------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def test_local_ca_revocation_signs_a_numbered_crl_with_each_serial_and_reason(tmp_path) -> None:
    clock = Clock()
    ca = LocalCA(tmp_path / "ca", clock=clock, create=True, crl_url="http://pki.certlc.test/local.crl")
    first = _leaf(ca.submit(make_csr("one.certlc.test"), "server"))
    second = _leaf(ca.submit(make_csr("two.certlc.test"), "server"))
    assert _cdp_urls(first) == ["http://pki.certlc.test/local.crl"]

    assert ca.revoke(_pem(first), "keyCompromise") == Revoked(f"{first.serial_number:x}", "keyCompromise")
    clock.now += dt.timedelta(minutes=5)
    assert ca.revoke(_pem(second), "superseded") == Revoked(f"{second.serial_number:x}", "superseded")

    der = (tmp_path / "ca" / "crl.der").read_bytes()
    crl = x509.load_der_x509_crl(der)
    entry = _crl_entry(der, ca.certificate, first.serial_number)
    assert entry is not None and _reason(entry) == x509.ReasonFlags.key_compromise
    assert entry.revocation_date_utc == NOW
    later = _crl_entry(der, ca.certificate, second.serial_number)
    assert later is not None and _reason(later) == x509.ReasonFlags.superseded
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert (crl.last_update_utc, crl.next_update_utc) == (clock.now, clock.now + dt.timedelta(days=1))
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(ca.certificate.public_key()).digest

    again = ca.revoke(_pem(first), "superseded")

    assert again == Revoked(f"{first.serial_number:x}", "keyCompromise", "already revoked")
    assert (tmp_path / "ca" / "crl.der").read_bytes() == der  # nothing new to publish


def test_local_ca_crl_is_renewed_once_its_next_update_has_passed(tmp_path) -> None:
    clock = Clock()
    ca = LocalCA(tmp_path / "ca", clock=clock, create=True)
    leaf = _leaf(ca.submit(make_csr("renewed.certlc.test"), "server"))
    ca.revoke(_pem(leaf), "keyCompromise")
    current = ca.crl_der()

    clock.now += dt.timedelta(hours=23)
    assert ca.crl_der() == current  # still current: the same CRL
    clock.now += dt.timedelta(hours=2)
    renewed = ca.crl_der()

    crl = x509.load_der_x509_crl(renewed)
    assert crl.last_update_utc == clock.now and crl.next_update_utc == clock.now + dt.timedelta(days=1)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    entry = _crl_entry(renewed, ca.certificate, leaf.serial_number)
    assert entry is not None and _reason(entry) == x509.ReasonFlags.key_compromise


def test_local_ca_with_no_revocation_yet_serves_an_empty_signed_crl(tmp_path) -> None:
    ca = LocalCA(tmp_path / "ca", clock=Clock(), create=True)

    crl = x509.load_der_x509_crl(ca.crl_der())

    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert len(crl) == 0


def test_local_ca_refuses_certificates_and_serials_it_did_not_issue(tmp_path) -> None:
    ca = LocalCA(tmp_path / "ca", create=True)
    stranger = _leaf(LocalCA(tmp_path / "other", create=True).submit(make_csr("other.certlc.test"), "server"))

    with pytest.raises(CaError, match="was not issued by the local CA"):
        ca.revoke(_pem(stranger), "keyCompromise")
    with pytest.raises(CaError, match=f"no record of issuing certificate {stranger.serial_number:x}"):
        ca.revoke_serial(f"{stranger.serial_number:x}", "keyCompromise")
    with pytest.raises(CaError, match="not a certificate serial number"):
        ca.revoke_serial("not-hex", "keyCompromise")
    assert not (tmp_path / "ca" / "crl.der").exists() and not (tmp_path / "ca" / "revoked").exists()


def test_the_runtime_gives_the_local_ca_its_crl_url_from_the_setting(tmp_path) -> None:
    LocalCA(tmp_path / "ca", create=True)
    env = {"CERTLC_LOCAL_CA_DIR": str(tmp_path / "ca")}

    with_url = ca_factory(env | {"CERTLC_LOCAL_CA_CRL_URL": "http://pki.certlc.test/ca.crl"}, clock=Clock())("local")
    without = ca_factory(env, clock=Clock())("local")

    assert _cdp_urls(_leaf(with_url.submit(make_csr("cdp.certlc.test"), "server"))) == ["http://pki.certlc.test/ca.crl"]
    plain = _leaf(without.submit(make_csr("plain.certlc.test"), "server"))
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.CRLDistributionPoints)


# -- AD CS (the emulator) --------------------------------------------------------------------------------------------


def _adcs(server: RunningAdcs) -> AdcsAuthority:
    return AdcsAuthority(
        server.server, auth_method="basic", username=ADCS_USERNAME, password=ADCS_PASSWORD, ca_bundle=server.ca_bundle
    )


def test_adcs_revoke_is_the_officers_certutil_command_and_the_published_crl_lists_it_once_run(adcs_server) -> None:
    leaf = _leaf(_adcs(adcs_server).submit(make_csr("revoke.corp.test"), "WebServer"))
    assert _cdp_urls(leaf) == [adcs_server.crl_url]
    assert adcs_server.crl_url.endswith("/CertEnroll/certlc%20local%20CA.crl")
    as_listed = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 7) // 8, "big").hex()

    result = _adcs(adcs_server).revoke(_pem(leaf), "keyCompromise")

    assert result == AwaitingPerson(
        f"{leaf.serial_number:x}",
        "keyCompromise",
        f'certutil -config "127.0.0.1\\certlc local CA" -revoke {as_listed} 1',
    )
    published = _get(adcs_server.crl_url, adcs_server.ca_bundle)  # no logon: anyone checking a certificate reads it
    assert published.status_code == 200 and published.headers["Content-Type"] == "application/pkix-crl"
    assert _crl_entry(published.content, adcs_server.ca.certificate, leaf.serial_number) is None  # nobody ran it yet

    adcs_server.revoke_serial(as_listed, 1)  # the officer runs the command

    published = _get(adcs_server.crl_url, adcs_server.ca_bundle)
    entry = _crl_entry(published.content, adcs_server.ca.certificate, leaf.serial_number)
    assert entry is not None and _reason(entry) == x509.ReasonFlags.key_compromise


def test_adcs_refuses_a_certificate_another_ca_issued_and_the_operator_an_unknown_serial(adcs_server, tmp_path) -> None:
    stranger = _leaf(LocalCA(tmp_path / "other", create=True).submit(make_csr("other.corp.test"), "server"))

    with pytest.raises(CaError, match=r"was not issued by the AD CS CA at 127\.0\.0\.1"):
        _adcs(adcs_server).revoke(_pem(stranger), "keyCompromise")
    with pytest.raises(CaError, match="no record of issuing"):
        adcs_server.revoke_serial(f"{stranger.serial_number:x}", 1)
    with pytest.raises(ValueError, match="reason code 2"):
        adcs_server.revoke_serial(f"{stranger.serial_number:x}", 2)
