"""ACME Renewal Information (RFC 9773): the certificate identifier, the window and its moment, the renewalInfo
client against an ACME front on a real pebble, new orders that name what they replace, and the notices."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from renewal.ca.acme import AcmeAuthority, Http01ServerSolver
from renewal.ca.acme_ari import (
    AriError,
    RenewalInfoClient,
    RenewalWindow,
    cert_id,
    cert_id_of,
    next_check,
    parse_renewal_info,
)
from renewal.ca.base import Issued
from renewal.keyvault import CertificateSnapshot
from renewal.notify import RenewalFailed, Renewed
from tests.fixtures.acme_ari import AriFront, ari_id, start_front
from tests.fixtures.pki import ChainCA
from tests.fixtures.servers import make_csr

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOUR = dt.timedelta(hours=1)
ARI_CA = ChainCA()  # leaves with a chosen serial, with or without an AKI: shapes trustme's leaves cannot take
# RFC 9773 section 4.1's example: the AKI keyIdentifier and serial of a certificate, and its identifier.
RFC_AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
RFC_SERIAL = 0x0087654321
RFC_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
# Section 4.2's example response body.
RFC_BODY = {
    "suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"},
    "explanationURL": "https://acme.example.com/docs/ari",
}


def leaf(serial: int, aki: bool = True, days: int = 60) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ari.certlc.test")])
    identifier = x509.AuthorityKeyIdentifier.from_issuer_public_key(ARI_CA.issuer.public_key())
    extensions = [(identifier, False)] if aki else []
    return ARI_CA.issue(
        key.public_key(), name, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=days), extensions, serial
    )


def snapshot(cert: x509.Certificate, version: str = "v1") -> CertificateSnapshot:
    return CertificateSnapshot(
        "kv1",
        "web",
        version,
        True,
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        "Unknown",
        {"certlc-ca": "acme"},
        cert.public_bytes(Encoding.DER),
        None,
    )


def test_the_identifier_of_the_rfc_example() -> None:
    assert cert_id(RFC_AKI, RFC_SERIAL) == RFC_ID


@pytest.mark.parametrize("serial", [1, 0x7F, 0x80, 0xFF, 0x8000, 0x0087654321, 2**159 - 1])
def test_the_identifier_of_a_certificate_is_the_one_certbot_computes(serial: int) -> None:
    """Serials with the high bit set need the DER sign byte (0x80 -> AIA, 0x87654321 -> AIdlQyE)."""
    cert = leaf(serial)
    assert cert_id_of(cert.public_bytes(Encoding.DER)) == ari_id(cert)


def test_a_certificate_without_an_authority_key_identifier_has_no_identifier() -> None:
    assert cert_id_of(leaf(5, aki=False).public_bytes(Encoding.DER)) is None


def test_the_rfc_example_response_is_read() -> None:
    window = parse_renewal_info(RFC_ID, RFC_BODY)
    assert (window.start, window.end) == (
        dt.datetime(2025, 1, 2, 4, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 3, 4, tzinfo=dt.UTC),
    )
    assert window.explanation_url == "https://acme.example.com/docs/ari"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"suggestedWindow": {"start": "2025-01-03T04:00:00Z", "end": "2025-01-02T04:00:00Z"}},  # ends first
        {"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-02T04:00:00Z"}},  # empty
        {"suggestedWindow": {"start": "2025-01-02T04:00:00", "end": "2025-01-03T04:00:00"}},  # no zone
        {"suggestedWindow": {"start": "soon", "end": "2025-01-03T04:00:00Z"}},
        [],
    ],
)
def test_an_unusable_window_is_refused(body) -> None:
    with pytest.raises(AriError):
        parse_renewal_info(RFC_ID, body)


def test_an_explanation_that_is_not_a_web_address_is_dropped() -> None:
    body = {**RFC_BODY, "explanationURL": "javascript:alert(1)"}
    assert parse_renewal_info(RFC_ID, body).explanation_url is None


def test_the_moment_is_inside_the_window_the_same_every_time_and_spread_over_it() -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    moments = [RenewalWindow(f"id{n}.AQ", start, start + dt.timedelta(days=1)).renew_at for n in range(200)]
    assert all(start <= m <= start + dt.timedelta(days=1) for m in moments)
    assert RenewalWindow("id0.AQ", start, start + dt.timedelta(days=1)).renew_at == moments[0]
    quarters = {int((m - start) / dt.timedelta(hours=6)) for m in moments}
    assert quarters == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("header", "after"),
    [
        ("21600", dt.timedelta(hours=6)),
        (None, dt.timedelta(hours=6)),
        ("3", dt.timedelta(minutes=1)),  # too eager: at most once a minute
        ("604800", dt.timedelta(days=1)),  # too lazy: at least once a day
        ("Wed, 01 Jan 2031 02:00:00 GMT", dt.timedelta(hours=2)),
        ("whenever", dt.timedelta(hours=6)),
    ],
)
def test_retry_after_decides_when_to_ask_again(header, after) -> None:
    now = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    assert next_check(header, now) == now + after


# -- against the front on a real pebble ------------------------------------------------------------


@pytest.fixture(scope="module")
def front(pebble, tmp_path_factory) -> Iterator[AriFront]:
    running = start_front(pebble, tmp_path_factory.mktemp("ari-front"))
    yield running
    running.stop()


@pytest.fixture
def client(front) -> RenewalInfoClient:
    front.fail_with = None
    return RenewalInfoClient(front.directory_url, verify=str(front.ca_bundle), timeout=10)


def test_the_window_comes_from_renewal_info_and_is_asked_for_again_after_retry_after(front, client) -> None:
    cert = leaf(0x87654321)
    certificate_id = front.suggest(cert, NOW - HOUR, NOW + HOUR, "https://ca.certlc.test/incident/42")
    asked = len(front.renewal_info_requests)

    window = client.window(snapshot(cert), NOW)
    assert window is not None
    assert (window.cert_id, window.start, window.end) == (certificate_id, NOW - HOUR, NOW + HOUR)
    assert window.explanation_url == "https://ca.certlc.test/incident/42"
    assert client.window(snapshot(cert), NOW + 5 * HOUR) == window  # kept until Retry-After (6 h)
    assert front.renewal_info_requests[asked:] == [certificate_id]
    client.window(snapshot(cert), NOW + 6 * HOUR)
    assert front.renewal_info_requests[asked:] == [certificate_id, certificate_id]


def test_the_listing_says_when_a_certificate_must_be_read_for_its_window(front, client) -> None:
    cert = leaf(77)
    front.suggest(cert, NOW + 10 * HOUR, NOW + 11 * HOUR)
    expires = cert.not_valid_after_utc
    assert client.may_be_due("kv1", "web", expires, NOW)  # never looked at: read it
    client.window(snapshot(cert), NOW)
    assert not client.may_be_due("KV1", "WEB", expires, NOW)  # its moment is hours away
    assert client.may_be_due("kv1", "web", expires, NOW + 11 * HOUR)  # its moment has come
    assert client.may_be_due("kv1", "web", expires + 90 * 24 * HOUR, NOW)  # a new version: read it


def test_a_failing_renewal_info_falls_back_and_is_logged_once(front, client, caplog) -> None:
    cert = leaf(78)
    front.suggest(cert, NOW - HOUR, NOW + HOUR)
    front.fail_with = 503
    with caplog.at_level(logging.WARNING, logger="certlc.ari"):
        assert client.window(snapshot(cert), NOW) is None
        assert client.window(snapshot(cert), NOW + 2 * HOUR) is None  # asked again after an hour, not logged again
    assert len([r for r in caplog.records if "renewalInfo" in r.getMessage()]) == 1
    assert "normal renewal window" in caplog.records[0].getMessage()
    front.fail_with = None
    assert client.window(snapshot(cert), NOW + 4 * HOUR) is not None  # back


def test_an_unknown_certificate_and_an_expired_one_have_no_window(front, client) -> None:
    assert client.window(snapshot(leaf(79)), NOW) is None  # 404
    expired = leaf(80, days=-1)
    front.suggest(expired, NOW - HOUR, NOW + HOUR)
    asked = len(front.renewal_info_requests)
    assert client.window(snapshot(expired), NOW) is None
    assert front.renewal_info_requests[asked:] == []  # RFC 9773: never asked after expiry


def test_a_server_without_renewal_info_is_not_asked(pebble) -> None:
    plain = RenewalInfoClient(pebble.directory_url, verify=str(pebble.ca_bundle), timeout=10)
    assert plain.window(snapshot(leaf(81)), NOW) is None
    assert not plain.may_be_due("kv1", "web", NOW + 24 * HOUR, NOW)


@pytest.fixture
def authority(front, tmp_path) -> Iterator[AcmeAuthority]:
    """The ACME adapter on the front, with its own account and an http-01 solver."""
    with Http01ServerSolver() as solver:
        yield AcmeAuthority(
            front.directory_url,
            account_key_path=tmp_path / "account.pem",
            ca_bundle=str(front.ca_bundle),
            solver=solver,
        )


def test_a_new_order_names_the_certificate_it_replaces(front, authority) -> None:
    replacing = authority.submit(make_csr("replacing.certlc.test"), "", replaces=RFC_ID)
    plain = authority.submit(make_csr("plain.certlc.test"), "")
    assert isinstance(replacing, Issued) and isinstance(plain, Issued)
    orders = {o["identifiers"][0]["value"]: o for o in front.new_orders}
    assert orders["replacing.certlc.test"]["replaces"] == RFC_ID
    assert "replaces" not in orders["plain.certlc.test"]


@pytest.mark.parametrize("status", [409, 400])
def test_an_order_refused_as_already_replaced_is_placed_again_without_naming_it(
    front, authority, caplog, status
) -> None:
    """An earlier attempt's order already named the certificate (it failed after placing it): the CA refuses a
    second one with ``alreadyReplaced`` (Let's Encrypt: HTTP 409), and the renewal orders without ``replaces``."""
    front.already_replaced_status = status
    name = f"again{status}.certlc.test"
    replaces = ari_id(leaf(status))
    earlier = authority.submit(make_csr(name), "", replaces=replaces)
    with caplog.at_level(logging.WARNING, logger="certlc.ari"):
        again = authority.submit(make_csr(name), "", replaces=replaces)
    assert isinstance(earlier, Issued) and isinstance(again, Issued), again
    assert [o.get("replaces") for o in front.new_orders if o["identifiers"][0]["value"] == name] == [
        replaces,
        replaces,  # refused
        None,
    ]
    assert f"{replaces} already has a replacement order" in caplog.text


# -- the notices -----------------------------------------------------------------------------------


def test_the_renewed_notice_says_the_ca_asked_and_links_its_explanation() -> None:
    url = "https://ca.certlc.test/incident/42?a=1&b=2"
    notice = Renewed("kv1", "web", "v1", "v2", "AB", NOW, "acme", explanation_url=url)
    assert "renewed early because the CA asked" in notice.summary
    assert ("Why the CA asked for an early renewal", url) in notice.facts()
    assert "incident/42?a=1&amp;b=2" in notice.html_body()
    assert notice.to_dict()["explanation_url"] == url
    assert "early" not in Renewed("kv1", "web", "v1", "v2", "AB", NOW, "acme").text_body()


def test_the_failure_notice_carries_the_explanation_of_an_early_renewal() -> None:
    url = "https://ca.certlc.test/incident/42"
    failed = RenewalFailed("kv1", "web", "ca_denied", "denied", "ask", True, 1, explanation_url=url)
    assert url in failed.text_body()
    assert "Why the CA" not in RenewalFailed("kv1", "web", "ca_denied", "denied", "ask", True, 1).text_body()
