"""The CFSSL adapter against a real ``cfssl serve``."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from localazure.ports import free_port

from renewal.ca.base import CaConfigError, CaUnavailable, Denied, Issued
from renewal.ca.cfssl import CfsslAuthority
from tests.fixtures.servers import CFSSL_TEST_AUTH_KEY, make_csr, verify_chain

pytestmark = pytest.mark.cfssl


def _eku(chain: tuple[str, ...]) -> list:
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    return list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_issues_leaf_plus_ca_for_the_requested_profile(cfssl_server, key_type) -> None:
    result = CfsslAuthority(cfssl_server.url).submit(make_csr("web.certlc.test", key_type=key_type), "server")

    assert isinstance(result, Issued)
    assert len(result.chain_pem) == 2
    assert result.chain_pem[1].strip() == cfssl_server.ca_pem.strip()
    verify_chain(result.chain_pem, cfssl_server.ca_pem, "web.certlc.test")
    assert _eku(result.chain_pem) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_empty_profile_uses_the_configured_default(cfssl_server) -> None:
    ca = CfsslAuthority(cfssl_server.url, profile_default="client")
    result = ca.submit(make_csr("user.certlc.test"), "")

    assert isinstance(result, Issued)
    assert _eku(result.chain_pem) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_unknown_profile_is_denied_not_silently_signed_with_the_default(cfssl_server) -> None:
    result = CfsslAuthority(cfssl_server.url).submit(make_csr("web.certlc.test"), "webserver")

    assert isinstance(result, Denied)
    assert "'webserver'" in result.reason and "default policy" in result.reason


def test_profile_outside_the_configured_list_is_denied(cfssl_server) -> None:
    result = CfsslAuthority(cfssl_server.url, profiles=["server"]).submit(make_csr("a.certlc.test"), "client")

    assert result == Denied("cfssl profile 'client' is not configured; known: server")


def test_unknown_default_profile_is_a_configuration_error(cfssl_server) -> None:
    ca = CfsslAuthority(cfssl_server.url, profile_default="nonesuch")

    with pytest.raises(CaConfigError, match=r"'nonesuch'.*configured default profile"):
        ca.submit(make_csr("web.certlc.test"), "")


def test_bad_csr_is_denied_with_cfssls_code(cfssl_server) -> None:
    result = CfsslAuthority(cfssl_server.url).submit(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "server")

    assert isinstance(result, Denied)
    assert "code 9002" in result.reason


def test_server_down_is_unavailable() -> None:
    ca = CfsslAuthority(f"http://127.0.0.1:{free_port()}", timeout=2)

    with pytest.raises(CaUnavailable, match="unreachable"):
        ca.submit(make_csr("web.certlc.test"), "server")


@pytest.fixture
def overloaded_url() -> Iterator[str]:
    class Overloaded(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(503)
            self.send_header("Retry-After", "120")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Overloaded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_error_is_unavailable_with_retry_after(overloaded_url) -> None:
    with pytest.raises(CaUnavailable, match="HTTP 503") as caught:
        CfsslAuthority(overloaded_url).submit(make_csr("web.certlc.test"), "")

    assert caught.value.retry_after_seconds == 120


def test_authsign_with_the_right_key_issues(cfssl_auth_server) -> None:
    ca = CfsslAuthority(cfssl_auth_server.url, auth_key=CFSSL_TEST_AUTH_KEY)
    result = ca.submit(make_csr("auth.certlc.test", key_type="ec"), "server")

    assert isinstance(result, Issued)
    verify_chain(result.chain_pem, cfssl_auth_server.ca_pem, "auth.certlc.test")


def test_authsign_with_a_wrong_key_is_a_configuration_error(cfssl_auth_server) -> None:
    ca = CfsslAuthority(cfssl_auth_server.url, auth_key="ff" * 16)

    with pytest.raises(CaConfigError, match=r"authentication.*invalid token"):
        ca.submit(make_csr("auth.certlc.test"), "server")


def test_unauthenticated_sign_on_an_authenticated_server_says_to_set_the_key(cfssl_auth_server) -> None:
    with pytest.raises(CaConfigError, match="only authsign is served"):
        CfsslAuthority(cfssl_auth_server.url).submit(make_csr("auth.certlc.test"), "server")


def test_auth_key_must_be_hex() -> None:
    with pytest.raises(CaConfigError, match="hex"):
        CfsslAuthority("http://127.0.0.1:1", auth_key="not-hex")


def test_poll_is_a_configuration_error() -> None:
    with pytest.raises(CaConfigError, match="never leaves a request pending"):
        CfsslAuthority("http://127.0.0.1:1").poll("42")
