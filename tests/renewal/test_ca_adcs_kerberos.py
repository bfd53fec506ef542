"""The AD CS adapter with CERTLC_ADCS_AUTH=kerberos, through the real ``certsrv`` client and requests-kerberos (on
pyspnego and gssapi), against the local ``/certsrv`` server accepting Kerberos with its keytab and Extended
Protection, with tickets from a real MIT KDC on loopback. Every refusal must end as one permanent, explained
error within the test's deadline, never as a retry loop."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytest.importorskip("requests_kerberos", reason="the kerberos extra (requirements-kerberos.txt) is not installed")

from localazure.emulators import adcs
from localazure.emulators.adcs import RunningAdcs, pages

from renewal.ca.adcs import AdcsAuthority
from renewal.ca.adcs_kerberos import kerberos_failure
from renewal.ca.base import CaConfigError, CaUnavailable, Denied, Issued, Pending
from renewal.clock import clock_from_env
from renewal.runtime import ca_factory
from tests.fixtures.kdc import CLIENT, REALM, Kdc
from tests.fixtures.servers import make_csr, verify_chain
from tests.fixtures.tls_proxy import TlsTerminatingProxy

pytestmark = pytest.mark.timeout(60)
PRINCIPAL = f"{CLIENT}@{REALM}"


@pytest.fixture(scope="module")
def kerberos_server(kdc: Kdc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAdcs]:
    """Started outside any test's Kerberos environment: the server needs nothing but its keytab."""
    running = adcs.start(tmp_path_factory.mktemp("adcs-kerberos"), auth="negotiate", keytab=kdc.http_keytab)
    yield running
    running.stop()


@pytest.fixture
def refusing_server(kdc: Kdc, tmp_path: Path) -> Iterator[RunningAdcs]:
    """A server of its own, for a test that makes it refuse an account."""
    running = adcs.start(tmp_path / "adcs", auth="negotiate", keytab=kdc.http_keytab)
    yield running
    running.stop()


def _as_worker(monkeypatch: pytest.MonkeyPatch, kdc: Kdc, workdir: Path, keytab: Path | None) -> None:
    """The worker's Kerberos environment, for this test only."""
    for name, value in kdc.client_env(workdir, keytab).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch, kdc: Kdc, tmp_path: Path) -> None:
    """A worker with the service account's keytab and an empty credential cache."""
    _as_worker(monkeypatch, kdc, tmp_path, kdc.client_keytab)


def _adcs(server: str, ca_bundle: str, **overrides: object) -> AdcsAuthority:
    options = {"auth_method": "kerberos", "ca_bundle": ca_bundle, "poll_seconds": 900, "timeout": 10}
    return AdcsAuthority(server, **{**options, **overrides})  # type: ignore[arg-type]


def test_issues_with_the_workers_keytab_and_the_server_knows_the_principal(kerberos_server, worker) -> None:
    result = _adcs(kerberos_server.server, kerberos_server.ca_bundle).submit(make_csr("krb.corp.test"), "WebServer")

    assert isinstance(result, Issued)
    verify_chain(result.chain_pem, kerberos_server.ca.certificate_pem, "krb.corp.test")


def test_the_runtime_builds_it_from_settings_without_a_username_or_password(kerberos_server, worker) -> None:
    env = {
        "CERTLC_ADCS_SERVER": kerberos_server.server,
        "CERTLC_ADCS_AUTH": "kerberos",
        "CERTLC_ADCS_CA_BUNDLE": kerberos_server.ca_bundle,
    }
    ca = ca_factory(env, clock_from_env(env))("adcs")

    assert isinstance(ca.submit(make_csr("rt.krb.corp.test"), "WebServer"), Issued)


def test_pending_then_approved_and_a_denial_in_the_cas_words(kerberos_server, worker) -> None:
    ca = _adcs(kerberos_server.server, kerberos_server.ca_bundle)
    first = ca.submit(make_csr("approve.krb.corp.test"), "WebServerApproval")
    second = ca.submit(make_csr("deny.krb.corp.test"), "WebServerApproval")
    assert isinstance(first, Pending) and isinstance(second, Pending)
    assert first.approver == "an administrator"

    kerberos_server.approve(first.request_id)
    kerberos_server.deny(second.request_id)

    issued = ca.poll(first.request_id)
    assert isinstance(issued, Issued)
    verify_chain(issued.chain_pem, kerberos_server.ca.certificate_pem, "approve.krb.corp.test")
    denied = ca.poll(second.request_id)
    assert isinstance(denied, Denied)
    assert (denied.request_id, denied.ca_message) == (second.request_id, pages.ADMIN_DENIED)


def test_a_credential_cache_filled_by_kinit_is_enough(kerberos_server, kdc, monkeypatch, tmp_path) -> None:
    _as_worker(monkeypatch, kdc, tmp_path, keytab=None)  # no client keytab: only what kinit put in the cache
    kinit = subprocess.run(
        ["kinit", "-k", "-t", str(kdc.client_keytab), PRINCIPAL],
        stdin=subprocess.DEVNULL, stdout=(tmp_path / "kinit.log").open("wb"), stderr=subprocess.STDOUT,
        timeout=20, check=False,
    )  # fmt: skip
    assert kinit.returncode == 0, (tmp_path / "kinit.log").read_text()

    ca = _adcs(kerberos_server.server, kerberos_server.ca_bundle, username=PRINCIPAL)
    assert isinstance(ca.submit(make_csr("ccache.corp.test"), "WebServer"), Issued)


def test_no_ticket_and_no_keytab_is_permanent_and_says_how_to_give_the_worker_one(
    kerberos_server, kdc, monkeypatch, tmp_path
) -> None:
    _as_worker(monkeypatch, kdc, tmp_path, keytab=None)
    before = len(kerberos_server.refusals)

    with pytest.raises(CaConfigError) as raised:
        _adcs(kerberos_server.server, kerberos_server.ca_bundle).submit(make_csr("none.corp.test"), "WebServer")

    message = str(raised.value)
    assert "No Kerberos credentials available" in message
    assert "KRB5_CLIENT_KTNAME" in message and "kinit -k" in message
    assert len(kerberos_server.refusals) == before  # the web server was never sent a token


def test_a_keytab_with_the_accounts_old_key_is_permanent(kerberos_server, kdc, monkeypatch, tmp_path) -> None:
    _as_worker(monkeypatch, kdc, tmp_path, kdc.stale_keytab)

    with pytest.raises(CaConfigError, match="make a new keytab"):
        _adcs(kerberos_server.server, kerberos_server.ca_bundle).submit(make_csr("stale.corp.test"), "WebServer")


def test_a_principal_the_kdc_does_not_know_is_permanent(kerberos_server, kdc, monkeypatch, tmp_path) -> None:
    _as_worker(monkeypatch, kdc, tmp_path, kdc.gone_keytab)

    with pytest.raises(CaConfigError, match=r"not found in Kerberos database.*does not know this client principal"):
        _adcs(kerberos_server.server, kerberos_server.ca_bundle).submit(make_csr("gone.corp.test"), "WebServer")


def test_a_server_name_without_an_spn_says_to_use_the_name_the_spn_is_registered_for(kerberos_server, worker) -> None:
    by_address = kerberos_server.server.replace("localhost", "127.0.0.1")  # the SPN is HTTP/localhost

    with pytest.raises(CaConfigError) as raised:
        _adcs(by_address, kerberos_server.ca_bundle).submit(make_csr("ip.corp.test"), "WebServer")

    assert "no account holds the SPN HTTP/127.0.0.1" in str(raised.value)
    assert "setspn -Q" in str(raised.value)


def test_an_unreachable_kdc_is_transient(kerberos_server, kdc, monkeypatch, tmp_path) -> None:
    _as_worker(monkeypatch, kdc, tmp_path, kdc.client_keytab)
    closed = tmp_path / "krb5.conf"
    closed.write_text(kdc.krb5_conf.read_text().replace(f":{kdc.port}", ":9"))  # discard: nothing listens
    monkeypatch.setenv("KRB5_CONFIG", str(closed))

    with pytest.raises(CaUnavailable, match="the KDC is unreachable"):
        _adcs(kerberos_server.server, kerberos_server.ca_bundle).submit(make_csr("nokdc.corp.test"), "WebServer")


def test_a_refusal_after_a_complete_handshake_is_permanent_and_not_retried_in_a_loop(refusing_server, worker) -> None:
    refusing_server.lock_out(PRINCIPAL)

    with pytest.raises(CaConfigError) as raised:
        _adcs(refusing_server.server, refusing_server.ca_bundle).submit(make_csr("locked.corp.test"), "WebServer")

    message = str(raised.value)
    assert "HTTP 401" in message and "refused the Kerberos ticket after a complete handshake" in message
    assert refusing_server.refusals == ["AccountLockedOut", "AccountLockedOut"]  # requests-kerberos tries twice


def test_through_a_tls_terminating_proxy_the_channel_binding_is_refused(kerberos_server, worker, tmp_path) -> None:
    proxy = TlsTerminatingProxy(tmp_path, kerberos_server.server, kerberos_server.ca_bundle)
    before = len(kerberos_server.refusals)
    try:
        ca = _adcs(proxy.server.replace("127.0.0.1", "localhost"), proxy.ca_bundle)
        with pytest.raises(CaConfigError) as raised:
            ca.submit(make_csr("proxied.krb.corp.test"), "WebServer")
    finally:
        proxy.stop()

    assert "Extended Protection refused the channel binding" in str(raised.value)
    assert kerberos_server.refusals[before:] == ["BadChannelBindingsError"] * 2


def test_a_server_that_offers_no_negotiate_is_named(adcs_server, worker) -> None:
    with pytest.raises(CaConfigError, match=r"does not offer Negotiate \(Kerberos\) \(it offers Basic"):
        _adcs(adcs_server.server, adcs_server.ca_bundle).submit(make_csr("basic.corp.test"), "WebServer")


def test_no_kerberos_token_the_client_sends_reaches_the_logs(kerberos_server, worker, caplog) -> None:
    caplog.set_level(logging.DEBUG)

    result = _adcs(kerberos_server.server, kerberos_server.ca_bundle).submit(make_csr("logs.corp.test"), "WebServer")

    assert isinstance(result, Issued)
    sent = [line for line in caplog.text.splitlines() if re.search(r"authorization|step input|step output", line, re.I)]
    assert any("Negotiate [redacted]" in line for line in sent)  # the client's tokens were logged, redacted...
    assert not [line for line in sent if re.search(r"[A-Za-z0-9+/]{20,}", line)]  # ...with nothing of a ticket left


def test_a_password_with_kerberos_is_refused_before_any_request() -> None:
    with pytest.raises(CaConfigError, match="CERTLC_ADCS_PASSWORD is not used with Kerberos"):
        AdcsAuthority("localhost:1", auth_method="kerberos", password="not-for-kerberos")


def test_clock_skew_says_to_sync_the_clock() -> None:
    error = kerberos_failure(
        "ca01.corp.example",
        "SpnegoError (7): Major (851968): Unspecified GSS failure, Minor (2529638949): Clock skew too great, "
        "Context: Processing security token",
    )

    assert isinstance(error, CaConfigError)
    assert "Clock skew too great" in str(error) and "NTP" in str(error)


def test_the_local_server_refuses_a_ticket_without_channel_binding(kerberos_server, worker) -> None:
    """Extended Protection set to Required, as the adapter's channel binding is meant for."""
    from requests_kerberos import HTTPKerberosAuth

    before = len(kerberos_server.refusals)

    answer = requests.get(
        kerberos_server.url, auth=HTTPKerberosAuth(send_cbt=False), verify=kerberos_server.ca_bundle, timeout=10
    )

    assert answer.status_code == 401
    assert kerberos_server.refusals[before:] == ["NoChannelBinding"] * 2


def test_the_local_server_answers_a_token_that_is_not_base64_with_a_fresh_401(kerberos_server) -> None:
    """As any failed logon, never a dropped connection (which a client would read as a CA that is down)."""
    before = len(kerberos_server.refusals)

    answer = requests.get(
        kerberos_server.url,
        headers={"Authorization": "Negotiate not*base64"},
        verify=kerberos_server.ca_bundle,
        timeout=10,
    )

    assert (answer.status_code, answer.headers.get("WWW-Authenticate")) == (401, "Negotiate")
    assert kerberos_server.refusals[before:] == ["MalformedToken"]
