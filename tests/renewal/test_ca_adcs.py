"""The AD CS adapter, through the real ``certsrv`` client, against the local ``/certsrv`` server over HTTPS: Basic,
and NTLM through ``requests-ntlm`` against pyspnego's acceptor with Extended Protection enforced."""

from __future__ import annotations

import base64
import logging
import os
import time

import certsrv
import pytest
import requests
from cryptography import x509
from localazure.emulators import adcs
from localazure.emulators.adcs import RunningAdcs, pages
from localazure.ports import free_port
from requests_ntlm import HttpNtlmAuth

from renewal.ca.adcs import AdcsAuthority
from renewal.ca.base import CaConfigError, CaUnavailable, Denied, Issued, Pending
from renewal.clock import clock_from_env
from renewal.runtime import ca_factory
from tests.fixtures.adcs import ADCS_PASSWORD, ADCS_USERNAME
from tests.fixtures.servers import make_csr, submit_on_threads, verify_chain
from tests.fixtures.tls_proxy import TlsTerminatingProxy

PENDING_WORDS = (
    "Your certificate request has been received. However, you must wait for an administrator to issue the "
    "certificate you requested."
)


@pytest.fixture(params=["basic", "ntlm"])
def enrollment(request: pytest.FixtureRequest) -> RunningAdcs:
    """The same CA behind Basic and behind NTLM with Extended Protection: what it says must not depend on the logon."""
    return request.getfixturevalue("adcs_server" if request.param == "basic" else "adcs_ntlm_server")


def _adcs(server: RunningAdcs, **overrides: object) -> AdcsAuthority:
    options = {
        "auth_method": server.auth,
        "username": ADCS_USERNAME,
        "password": ADCS_PASSWORD,
        "ca_bundle": server.ca_bundle,
        "poll_seconds": 900,
    }
    return AdcsAuthority(server.server, **{**options, **overrides})  # type: ignore[arg-type]


def test_issues_a_leaf_that_verifies_against_the_ca_and_keeps_the_csr_sans(enrollment) -> None:
    result = _adcs(enrollment).submit(make_csr("web.corp.test", "www.corp.test"), "WebServer")

    assert isinstance(result, Issued)
    assert result.chain_pem[1] == enrollment.ca.certificate_pem
    leaf = verify_chain(result.chain_pem, enrollment.ca.certificate_pem, "www.corp.test")
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["web.corp.test", "www.corp.test"]


def test_manager_approval_is_pending_in_the_cas_words_until_approved(enrollment) -> None:
    ca = _adcs(enrollment)
    first = ca.submit(make_csr("approve.corp.test"), "WebServerApproval")

    assert isinstance(first, Pending) and first.request_id.isdigit()
    assert first.retry_after_seconds == 900
    assert (first.ca_message, first.approver) == (PENDING_WORDS, "an administrator")
    again = ca.poll(first.request_id)
    assert isinstance(again, Pending)
    assert (again.request_id, again.ca_message) == (first.request_id, pages.UNDER_SUBMISSION)
    enrollment.approve(first.request_id)
    issued = ca.poll(first.request_id)
    assert isinstance(issued, Issued)
    verify_chain(issued.chain_pem, enrollment.ca.certificate_pem, "approve.corp.test")


def test_a_request_the_manager_denies_is_denied_with_the_cas_message_and_request_id(enrollment) -> None:
    ca = _adcs(enrollment)
    pending = ca.submit(make_csr("deny.corp.test"), "WebServerApproval")
    assert isinstance(pending, Pending)
    enrollment.deny(pending.request_id)

    result = ca.poll(pending.request_id)

    assert isinstance(result, Denied)
    assert (result.request_id, result.ca_message) == (pending.request_id, pages.ADMIN_DENIED)
    assert f"request {pending.request_id}" in result.reason and pages.ADMIN_DENIED in result.reason


def test_a_template_the_ca_does_not_offer_is_denied_with_the_cas_wording(enrollment) -> None:
    result = _adcs(enrollment).submit(make_csr("x.corp.test"), "NoSuchTemplate")

    assert isinstance(result, Denied)
    assert "'NoSuchTemplate'" in result.reason
    assert result.ca_message == pages.UNSUPPORTED_TEMPLATE
    assert result.request_id.isdigit() and f"request {result.request_id} " in result.reason
    assert "0x80094800, The requested certificate template is not supported by this CA." in result.reason


def test_a_template_oid_is_refused_with_what_to_do(adcs_server) -> None:
    result = _adcs(adcs_server).submit(make_csr("oid.corp.test"), "1.3.6.1.4.1.311.21.8.1.2.3")

    assert isinstance(result, Denied)
    assert "1.3.6.1.4.1.311.21.8.1.2.3" in result.reason and "certlc-profile" in result.reason


def test_wrong_password_is_a_configuration_error_that_never_shows_the_password(adcs_server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-but-secret!"

    with pytest.raises(CaConfigError) as raised:
        _adcs(adcs_server, password=wrong).submit(make_csr("a.corp.test"), "WebServer")

    assert "HTTP 401" in str(raised.value) and "Enroll permission" in str(raised.value)
    assert ADCS_USERNAME in str(raised.value)
    assert caplog.records, "certsrv logs its requests at DEBUG; the check below must look at them"
    basic = base64.b64encode(f"{ADCS_USERNAME}:{wrong}".encode()).decode()
    for text in (str(raised.value), caplog.text):
        assert wrong not in text and basic not in text
    assert "Authorization: [redacted]" in caplog.text


def test_ntlm_against_a_server_without_ntlm_says_what_the_server_offers(adcs_server) -> None:
    with pytest.raises(CaConfigError, match="HTTP 401") as raised:
        _adcs(adcs_server, auth_method="ntlm").submit(make_csr("n.corp.test"), "WebServer")

    assert 'does not offer NTLM (it offers Basic realm="certsrv")' in str(raised.value)


def test_ntlm_logs_on_bound_to_the_servers_tls_certificate(adcs_ntlm_server) -> None:
    refused_before = list(adcs_ntlm_server.refusals)
    user_file_before = os.environ.get("NTLM_USER_FILE")

    assert isinstance(_adcs(adcs_ntlm_server).submit(make_csr("bound.corp.test"), "WebServer"), Issued)
    assert adcs_ntlm_server.refusals == refused_before
    assert os.environ.get("NTLM_USER_FILE") == user_file_before  # the acceptor's account file never outlives its calls


@pytest.mark.timeout(60)
def test_renewals_on_many_threads_each_log_on_over_their_own_connection(adcs_ntlm_server, monkeypatch) -> None:
    """The host runs a batch of renewals at once on one shared adapter. NTLM authenticates a connection, and
    requests-ntlm returns it to the pool between the handshake's legs: another thread taking it there would get
    a logon refused (HTTP 401, a permanent failure). Pausing after each return makes that hand-over likely."""
    import urllib3.response

    give_back = urllib3.response.HTTPResponse.release_conn

    def give_back_then_pause(response: urllib3.response.HTTPResponse) -> None:
        give_back(response)
        time.sleep(0.03)

    monkeypatch.setattr(urllib3.response.HTTPResponse, "release_conn", give_back_then_pause)
    shared = _adcs(adcs_ntlm_server)
    before = len(adcs_ntlm_server.refusals)

    outcomes = submit_on_threads(shared, [f"batch{i}.corp.test" for i in range(12)], "WebServer")

    assert outcomes == ["Issued"] * 12
    assert adcs_ntlm_server.refusals[before:] == []


def test_an_ntlm_leg_out_of_sequence_or_not_base64_is_a_fresh_401(adcs_ntlm_server) -> None:
    """As IIS answers a failed logon: an AUTHENTICATE on a connection that never negotiated, or a token that is
    not base64, is refused with a new challenge, never a dropped connection."""
    authenticate = base64.b64encode(b"NTLMSSP\x00\x03\x00\x00\x00" + bytes(60)).decode()
    url = f"{adcs_ntlm_server.url}certcarc.asp"
    before = len(adcs_ntlm_server.refusals)

    for token in (authenticate, "not*base64"):
        answer = requests.get(
            url, headers={"Authorization": f"NTLM {token}"}, verify=adcs_ntlm_server.ca_bundle, timeout=10
        )
        assert (answer.status_code, answer.headers.get("WWW-Authenticate")) == (401, "NTLM")
    assert adcs_ntlm_server.refusals[before:] == ["OutOfSequence", "MalformedToken"]


def test_extended_protection_refuses_an_ntlm_logon_without_a_channel_binding(adcs_ntlm_server) -> None:
    session = requests.Session()
    session.trust_env = False
    url = f"{adcs_ntlm_server.url}certcarc.asp"
    session.auth = HttpNtlmAuth(ADCS_USERNAME, ADCS_PASSWORD, send_cbt=False)
    before = len(adcs_ntlm_server.refusals)

    assert session.get(url, verify=adcs_ntlm_server.ca_bundle, timeout=10).status_code == 401
    assert adcs_ntlm_server.refusals[before:] == ["BadBindingsError"]
    session.auth = HttpNtlmAuth(ADCS_USERNAME, ADCS_PASSWORD)  # the same client with its binding: let in
    assert session.get(url, verify=adcs_ntlm_server.ca_bundle, timeout=10).status_code == 200


def test_extended_protection_refuses_the_all_zero_binding_of_a_client_that_has_none(
    adcs_ntlm_server, monkeypatch
) -> None:
    """MS-NLMP: a client with no channel binding to give sends sixteen zero bytes. Extended Protection required
    refuses it (pyspnego's acceptor alone would let it in). The client here is made to send zeros."""
    import spnego._ntlm

    monkeypatch.setattr(spnego._ntlm, "md5", lambda data: b"\x00" * 16)  # pyspnego hashes only the binding with it
    session = requests.Session()
    session.trust_env = False
    session.auth = HttpNtlmAuth(ADCS_USERNAME, ADCS_PASSWORD)
    before = len(adcs_ntlm_server.refusals)

    answer = session.get(f"{adcs_ntlm_server.url}certcarc.asp", verify=adcs_ntlm_server.ca_bundle, timeout=10)

    assert answer.status_code == 401
    assert adcs_ntlm_server.refusals[before:] == ["NoChannelBinding"]


@pytest.mark.timeout(30)
def test_ntlm_wrong_password_is_permanent_names_the_account_and_never_shows_secrets(adcs_ntlm_server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-but-secret!"
    before = len(adcs_ntlm_server.refusals)

    with pytest.raises(CaConfigError) as raised:
        _adcs(adcs_ntlm_server, password=wrong).submit(make_csr("w.corp.test"), "WebServer")

    message = str(raised.value)
    assert f"refused the account {ADCS_USERNAME} (HTTP 401)" in message and "the password is wrong" in message
    assert adcs_ntlm_server.refusals[before:] == ["InvalidTokenError"]
    assert "Authorization: [redacted]" in caplog.text and "Authorization: NTLM" not in caplog.text
    assert wrong not in caplog.text and wrong not in message


@pytest.mark.timeout(30)
def test_a_locked_out_account_is_refused_once_per_call_not_in_a_loop(tmp_path) -> None:
    server = adcs.start(tmp_path, username=ADCS_USERNAME, password=ADCS_PASSWORD, auth="ntlm")
    try:
        server.lock_out(ADCS_USERNAME)
        with pytest.raises(CaConfigError, match="locked out") as raised:
            _adcs(server, timeout=5).submit(make_csr("locked.corp.test"), "WebServer")
        assert server.refusals == ["AccountLockedOut"]
    finally:
        server.stop()
    assert ADCS_USERNAME in str(raised.value)


@pytest.mark.timeout(30)
def test_ntlm_through_a_tls_terminating_proxy_fails_on_the_channel_binding_with_what_to_do(
    adcs_ntlm_server, tmp_path
) -> None:
    proxy = TlsTerminatingProxy(tmp_path, adcs_ntlm_server.server, adcs_ntlm_server.ca_bundle)
    before = len(adcs_ntlm_server.refusals)
    try:
        ca = AdcsAuthority(
            proxy.server,
            auth_method="ntlm",
            username=ADCS_USERNAME,
            password=ADCS_PASSWORD,
            ca_bundle=proxy.ca_bundle,
            timeout=10,
        )
        with pytest.raises(CaConfigError) as raised:
            ca.submit(make_csr("proxied.corp.test"), "WebServer")
    finally:
        proxy.stop()

    assert adcs_ntlm_server.refusals[before:] == ["BadBindingsError"]
    assert ADCS_USERNAME in str(raised.value) and "TLS-terminating proxy" in str(raised.value)


def test_forbidden_is_a_configuration_error_and_5xx_is_transient(adcs_server) -> None:
    ca = _adcs(adcs_server)
    adcs_server.fail_next(403)
    with pytest.raises(CaConfigError, match="HTTP 403"):
        ca.submit(make_csr("f.corp.test"), "WebServer")
    adcs_server.fail_next(503)
    with pytest.raises(CaUnavailable, match="HTTP 503"):
        ca.submit(make_csr("f.corp.test"), "WebServer")


@pytest.mark.parametrize("status", [503, 404])
def test_an_issued_certificate_whose_download_failed_is_fetched_by_its_request_id(enrollment, status) -> None:
    """certsrv submits, then downloads the issued certificate: when only the download fails, the failure names the
    CA's request, so the retry polls it instead of asking the CA for a second certificate."""
    ca = _adcs(enrollment)
    enrollment.fail_next(status, path="/certsrv/certnew.cer")

    with pytest.raises(CaUnavailable) as raised:
        ca.submit(make_csr("handover.corp.test"), "WebServer")

    request_id = raised.value.request_id
    assert request_id and request_id.isdigit() and f"the CA issued request {request_id}" in str(raised.value)
    fetched = ca.poll(request_id)
    assert isinstance(fetched, Issued)
    assert verify_chain(fetched.chain_pem, enrollment.ca.certificate_pem, "handover.corp.test")


def test_a_server_that_is_down_is_unavailable() -> None:
    ca = AdcsAuthority(f"127.0.0.1:{free_port()}", auth_method="basic", username="u", password="p", timeout=5)

    with pytest.raises(CaUnavailable, match="unreachable"):
        ca.submit(make_csr("down.corp.test"), "WebServer")


def test_ca_bundle_wins_over_requests_ca_bundle_in_the_environment(adcs_server, monkeypatch, tmp_path) -> None:
    elsewhere = tmp_path / "other-roots.pem"
    elsewhere.write_text(make_other_root())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(elsewhere))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(elsewhere))
    plain = certsrv.Certsrv(adcs_server.server, ADCS_USERNAME, ADCS_PASSWORD, cafile=adcs_server.ca_bundle)
    with pytest.raises(requests.exceptions.SSLError):  # the trap: the environment beats session.verify
        plain.get_ca_cert()

    result = _adcs(adcs_server).submit(make_csr("trust.corp.test"), "WebServer")

    assert isinstance(result, Issued)


def test_without_the_ca_bundle_an_untrusted_server_is_a_configuration_error(adcs_server) -> None:
    with pytest.raises(CaConfigError, match="CERTLC_ADCS_CA_BUNDLE"):
        _adcs(adcs_server, ca_bundle=None).submit(make_csr("t.corp.test"), "WebServer")


def test_the_runtime_builds_the_adapter_from_app_settings(adcs_server) -> None:
    env = {
        "CERTLC_ADCS_SERVER": adcs_server.server,
        "CERTLC_ADCS_AUTH": "basic",
        "CERTLC_ADCS_USERNAME": ADCS_USERNAME,
        "CERTLC_ADCS_PASSWORD": ADCS_PASSWORD,
        "CERTLC_ADCS_CA_BUNDLE": adcs_server.ca_bundle,
        "CERTLC_ADCS_POLL_SECONDS": "120",
    }
    ca = ca_factory(env, clock_from_env(env))("adcs")

    assert isinstance(ca.submit(make_csr("rt.corp.test"), "WebServer"), Issued)
    pending = ca.submit(make_csr("rt.corp.test"), "WebServerApproval")
    assert isinstance(pending, Pending) and pending.retry_after_seconds == 120


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CERTLC_ADCS_SERVER is not set"),
        ({"CERTLC_ADCS_SERVER": "ca.corp.test"}, "CERTLC_ADCS_USERNAME"),
        ({"CERTLC_ADCS_SERVER": "ca.corp.test", "CERTLC_ADCS_AUTH": "digest"}, "'digest' is not supported"),
    ],
)
def test_missing_or_wrong_settings_are_explained(env, message) -> None:
    with pytest.raises(CaConfigError, match=message):
        ca_factory(env, clock_from_env(env))("adcs")


def make_other_root() -> str:
    """A root that did not issue the server's certificate."""
    import tempfile
    from pathlib import Path

    from localazure.pki import write_loopback_tls

    with tempfile.TemporaryDirectory() as folder:
        return write_loopback_tls(Path(folder), "other").ca_pem.read_text()


def _template_name_extension(name: str) -> x509.UnrecognizedExtension:
    """The v1 AD CS template-name extension (1.3.6.1.4.1.311.20.2), a BMPString as AD CS writes it."""
    body = name.encode("utf-16-be")
    return x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2"), bytes([0x1E, len(body)]) + body)


def _adcs_runtime(stack, adcs_server):
    from renewal.runtime import build_runtime

    return build_runtime(
        {
            **stack.settings,
            "CERTLC_CA": "adcs",
            "CERTLC_ADCS_SERVER": adcs_server.server,
            "CERTLC_ADCS_AUTH": adcs_server.auth,
            "CERTLC_ADCS_USERNAME": ADCS_USERNAME,
            "CERTLC_ADCS_PASSWORD": ADCS_PASSWORD,
            "CERTLC_ADCS_CA_BUNDLE": adcs_server.ca_bundle,
        }
    )


@pytest.mark.azurite
def test_renewal_through_adcs_uses_the_template_named_in_the_certificate(stack, adcs_server) -> None:
    from renewal.messages import RenewalRequest
    from tests.pipeline.helpers import client, seed, unique, versions

    name = unique("adcs")
    sans = (f"{name}.corp.test", f"www.{name}.corp.test")
    extra = (_template_name_extension("WebServer"),)
    seed(stack, name, days_left=60, sans=sans, tags={"certlc-ca": "adcs"}, extra=extra)  # not due: stack leaves it

    result = _adcs_runtime(stack, adcs_server).workflow.handle(RenewalRequest("kv1", name, "manual", force=True))

    assert result.status == "renewed", result.message
    assert len(versions(stack, name)) == 2
    current = client(stack).get_certificate(name)
    assert current.properties.version == result.new_version
    leaf = x509.load_der_x509_certificate(bytes(current.cer))
    assert leaf.issuer == adcs_server.ca.certificate.subject
    sans_now = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans_now.get_values_for_type(x509.DNSName)) == sorted(sans)


@pytest.mark.azurite
def test_renewal_through_adcs_with_only_a_template_oid_fails_with_what_to_do(stack, adcs_server) -> None:
    from renewal.messages import RenewalRequest
    from tests.pipeline.helpers import seed, unique, versions

    name = unique("adcs-oid")
    extra = (x509.MSCertificateTemplate(x509.ObjectIdentifier("1.3.6.1.4.1.311.21.8.7.7"), 100, 4),)
    seed(stack, name, days_left=60, tags={"certlc-ca": "adcs"}, extra=extra)

    result = _adcs_runtime(stack, adcs_server).workflow.handle(RenewalRequest("kv1", name, "manual", force=True))

    assert result.status == "failed" and result.reason == "ca_denied"
    assert "1.3.6.1.4.1.311.21.8.7.7" in result.message and "certlc-profile" in result.message
    assert len(versions(stack, name)) == 1


@pytest.mark.azurite
@pytest.mark.timeout(120)
def test_the_cas_words_on_a_pending_then_denied_renewal_reach_status_the_audit_and_the_alert(
    stack, alerts, adcs_ntlm_server, capsys
) -> None:
    from certlc.cli import main as certlc
    from renewal.messages import RenewalRequest
    from tests.pipeline.helpers import alerts_for, audit, seed, unique

    name = unique("adcs-words")
    seed(stack, name, days_left=60, tags={"certlc-profile": "WebServerApproval"})
    runtime = _adcs_runtime(stack, adcs_ntlm_server)

    waiting = runtime.workflow.handle(RenewalRequest("kv1", name, "manual", force=True))

    assert waiting.status == "pending", waiting.message
    request_id = waiting.request.ca_request_id
    pending = [r for r in audit(stack, name) if r["event"] == "pending"]
    assert [(r["ca_request_id"], r["ca_message"], r["approver"]) for r in pending] == [
        (request_id, PENDING_WORDS, "an administrator")
    ]
    capsys.readouterr()
    assert certlc(["--settings", str(stack.settings_path), "status", name, "--vault", "kv1"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Pending:"))
    assert f'adcs request {request_id}: "{PENDING_WORDS}" (to be approved by an administrator)' in line

    words = "Denied by Policy Module  0x80094014, Not for this host: ask PKI for the web tier's template."
    adcs_ntlm_server.deny(request_id, words)
    denied = runtime.workflow.handle(waiting.request)

    assert (denied.status, denied.reason) == ("failed", "ca_denied"), denied.message
    [event] = [r for r in audit(stack, name) if r["event"] == "denied"]
    assert (event["ca_request_id"], event["ca_message"]) == (request_id, words)
    [alert] = [a for a in alerts_for(alerts, name) if a["kind"] == "renewal_failed"]
    assert (alert["ca_request_id"], alert["ca_message"]) == (request_id, words)
    capsys.readouterr()
    assert certlc(["--settings", str(stack.settings_path), "status", name, "--vault", "kv1"]) == 0
    assert f"request {request_id}" not in next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("Pending:")
    )
