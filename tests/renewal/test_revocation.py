"""RevocationChecker against a real OCSP responder and CRL server on 127.0.0.1, built from the test PKI.

The server counts what it is asked, so each test proves both the answer and the traffic behind it: fallbacks,
the cache until nextUpdate, the brief memory of failures, the per-sweep limit and the issuer found by caIssuers.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509 import ocsp

from renewal.revocation import HttpFetcher, Problem, RevocationChecker
from renewal.revocation.check import RETRY_AFTER
from tests.renewal.test_revocation_decide import HOUR, KEY_COMPROMISE, NOW, OTHER, REVOKED_AT, ROOT, Pki

DER = Encoding.DER


class Clock:
    """The checker's and the server's "now", moved by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, by: dt.timedelta) -> None:
        self.now += by


class Authority:
    """What the CA's servers answer: OCSP at /ocsp, the CRL at /crl, its certificate at /ca.p7c; every request
    counted by path. ``broken`` paths answer 503; ``crl_body``/``ocsp_body`` replace the honest answers."""

    def __init__(self, pki: Pki, clock: Clock) -> None:
        self.pki = pki
        self.clock = clock
        self.revoked: dict[int, tuple[dt.datetime, x509.ReasonFlags | None]] = {}
        self.asked: Counter[str] = Counter()
        self.content_types: list[str] = []
        self.broken: set[str] = set()
        self.delay = 0.0
        self.crl_body: Callable[[], bytes] | None = None
        self.ocsp_body: Callable[[ocsp.OCSPRequest], bytes] | None = None
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        self.asked[path] += 1
        time.sleep(self.delay)
        if path in self.broken:
            return 503, b"down for maintenance"
        now = self.clock()
        if (method, path) == ("POST", "/ocsp"):
            request = ocsp.load_der_ocsp_request(body)
            if self.ocsp_body:
                return 200, self.ocsp_body(request)
            revoked = self.revoked.get(request.serial_number)
            return 200, self.pki.answer(request, revoked=revoked, this_update=now, next_update=now + HOUR)
        if (method, path) == ("GET", "/crl"):
            crl = self.crl_body() if self.crl_body else self.pki.crl(self.revoked, now, now + 24 * HOUR)
            return 200, crl
        if (method, path) == ("GET", "/ca.p7c"):
            return 200, pkcs7.serialize_certificates([OTHER.cert, self.pki.cert], DER)
        return 404, b"no such thing"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ca(clock: Clock) -> Iterator[Authority]:
    authority = Authority(ROOT, clock)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply("GET", b"")

        def do_POST(self) -> None:
            authority.content_types.append(self.headers.get("Content-Type", ""))
            self._reply("POST", self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        def _reply(self, method: str, body: bytes) -> None:
            status, answer = authority.answer(method, self.path, body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout, its size cap): what those tests are about

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    authority.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield authority
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def closed_url() -> str:
    """A URL nobody listens on: the port was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/crl"


def checker(clock: Clock, limit: int = 100, **fetcher: object) -> RevocationChecker:
    return RevocationChecker(HttpFetcher(**fetcher), clock, max_fetches_per_run=limit)


def leaf(ca: Authority, ocsp_path: str | None = "/ocsp", crl: str | None = "/crl", ca_issuers: bool = False) -> bytes:
    cert = ca.pki.leaf(
        [ca.url(ocsp_path)] if ocsp_path else [],
        [crl if crl.startswith("http") else ca.url(crl)] if crl else [],
        [ca.url("/ca.p7c")] if ca_issuers else [],
    )
    return cert.public_bytes(DER)


def serial(cert_der: bytes) -> int:
    return x509.load_der_x509_certificate(cert_der).serial_number


def test_good_from_the_ocsp_responder_by_post(ca, clock):
    status = checker(clock).check(leaf(ca), [ROOT.cert])
    assert (status.state, status.source, status.problem) == ("good", f"OCSP {ca.url('/ocsp')}", None)
    assert (status.checked_at, status.next_update) == (NOW, NOW + HOUR)
    assert ca.asked == Counter({"/ocsp": 1})  # the CRL is not fetched when OCSP answered
    assert ca.content_types == ["application/ocsp-request"]


def test_revoked_with_its_reason_and_date(ca, clock):
    cert = leaf(ca)
    ca.revoked[serial(cert)] = KEY_COMPROMISE
    status = checker(clock).check(cert, [ROOT.cert])
    assert (status.state, status.reason, status.revoked_at) == ("revoked", "keyCompromise", REVOKED_AT)
    assert status.detail == "revoked on 2030-05-20 08:30 UTC (keyCompromise)"


def test_the_crl_when_the_certificate_names_no_responder(ca, clock):
    cert = leaf(ca, ocsp_path=None)
    ca.revoked[serial(cert)] = (REVOKED_AT, x509.ReasonFlags.superseded)
    status = checker(clock).check(cert, [ROOT.cert])
    assert (status.state, status.reason, status.source) == ("revoked", "superseded", f"CRL {ca.url('/crl')}")
    assert status.next_update == NOW + 24 * HOUR
    assert ca.asked == Counter({"/crl": 1})


def test_a_responder_down_falls_back_to_the_crl(ca, clock):
    cert = leaf(ca)
    ca.revoked[serial(cert)] = KEY_COMPROMISE
    ca.broken.add("/ocsp")
    status = checker(clock).check(cert, [ROOT.cert])
    assert (status.state, status.source) == ("revoked", f"CRL {ca.url('/crl')}")
    assert ca.asked == Counter({"/ocsp": 1, "/crl": 1})


def test_both_down_is_unknown_with_both_reasons(ca, clock, closed_url):
    ca.broken.add("/ocsp")
    status = checker(clock).check(leaf(ca, crl=closed_url), [ROOT.cert])
    assert (status.state, status.problem) == ("unknown", Problem.UNREACHABLE)
    assert status.source == f"OCSP {ca.url('/ocsp')}; CRL {closed_url}"
    assert f"OCSP {ca.url('/ocsp')}: {ca.url('/ocsp')} answered HTTP 503" in status.detail
    assert f"CRL {closed_url}: could not fetch {closed_url}: Connection refused" in status.detail


def test_a_forged_ocsp_answer_is_never_good(ca, clock):
    impostor = ca.pki.impostor()
    ca.ocsp_body = lambda request: impostor.answer(request, by_name=True, include=[impostor.cert])
    only_ocsp = checker(clock).check(leaf(ca, crl=None), [ROOT.cert])
    assert (only_ocsp.state, only_ocsp.problem) == ("unknown", Problem.BAD_SIGNATURE)
    with_crl = checker(clock).check(leaf(ca), [ROOT.cert])  # the CRL, which the CA signed, answers instead
    assert (with_crl.state, with_crl.source) == ("good", f"CRL {ca.url('/crl')}")


def test_another_issuers_crl_is_unknown_and_not_kept(ca, clock):
    ca.crl_body = lambda: OTHER.crl()
    revocation = checker(clock)
    status = revocation.check(leaf(ca, ocsp_path=None), [ROOT.cert])
    assert (status.state, status.problem) == ("unknown", Problem.WRONG_ISSUER)
    ca.crl_body = None  # fixed: asked again once the failure's brief memory passed, though that CRL said 24 h
    clock.advance(RETRY_AFTER)
    assert revocation.check(leaf(ca, ocsp_path=None), [ROOT.cert]).state == "good"
    assert ca.asked == Counter({"/crl": 2})


def test_a_stale_crl_is_unknown(ca, clock):
    ca.crl_body = lambda: ROOT.crl(last_update=NOW - 48 * HOUR, next_update=NOW - HOUR)
    status = checker(clock).check(leaf(ca, ocsp_path=None), [ROOT.cert])
    assert (status.state, status.problem) == ("unknown", Problem.STALE)
    assert status.detail == "stale: it held until 2030-06-01 11:00 UTC"


def test_answers_are_kept_until_next_update(ca, clock):
    revocation = checker(clock)
    cert = leaf(ca)
    assert revocation.check(cert, [ROOT.cert]).state == "good"
    clock.advance(HOUR - dt.timedelta(seconds=1))
    kept = revocation.check(cert, [ROOT.cert])
    assert (kept.state, kept.checked_at) == ("good", NOW)  # the kept answer, with its own time
    assert ca.asked == Counter({"/ocsp": 1})
    clock.advance(dt.timedelta(seconds=1))  # nextUpdate
    assert revocation.check(cert, [ROOT.cert]).checked_at == clock.now
    assert ca.asked == Counter({"/ocsp": 2})


def test_one_crl_serves_every_certificate_it_covers_until_next_update(ca, clock):
    revocation = checker(clock)
    first, second = leaf(ca, ocsp_path=None), leaf(ca, ocsp_path=None)
    ca.revoked[serial(second)] = KEY_COMPROMISE
    assert [revocation.check(c, [ROOT.cert]).state for c in (first, second)] == ["good", "revoked"]
    assert ca.asked == Counter({"/crl": 1})
    clock.advance(24 * HOUR)
    assert revocation.check(first, [ROOT.cert]).state == "good"
    assert ca.asked == Counter({"/crl": 2})


def test_a_failure_is_kept_briefly_then_asked_again(ca, clock):
    revocation = checker(clock)
    cert = leaf(ca, crl=None)
    ca.broken.add("/ocsp")
    assert revocation.check(cert, [ROOT.cert]).problem == Problem.UNREACHABLE
    assert revocation.check(cert, [ROOT.cert]).problem == Problem.UNREACHABLE
    assert ca.asked == Counter({"/ocsp": 1})
    ca.broken.clear()
    clock.advance(RETRY_AFTER)
    assert revocation.check(cert, [ROOT.cert]).state == "good"
    assert ca.asked == Counter({"/ocsp": 2})


def test_a_sweep_makes_at_most_its_limit_of_fetches(ca, clock):
    revocation = checker(clock, limit=2)
    certs = [leaf(ca, crl=None) for _ in range(3)]
    statuses = [revocation.check(c, [ROOT.cert]) for c in certs]
    assert [s.state for s in statuses] == ["good", "good", "unknown"]
    assert statuses[2].problem == Problem.LIMIT
    assert statuses[2].detail == "not checked this sweep: 2 checks made, the limit"
    assert revocation.check(certs[0], [ROOT.cert]).state == "good"  # kept answers are not fetches
    assert ca.asked == Counter({"/ocsp": 2})
    revocation.start_run()
    assert revocation.check(certs[2], [ROOT.cert]).state == "good"
    assert (ca.asked, revocation.fetches) == (Counter({"/ocsp": 3}), 1)


def test_the_issuer_from_the_ca_issuers_url_fetched_once(ca, clock):
    revocation = checker(clock)
    first, second = leaf(ca, ca_issuers=True), leaf(ca, ca_issuers=True)
    ca.revoked[serial(second)] = KEY_COMPROMISE
    assert [revocation.check(c).state for c in (first, second)] == ["good", "revoked"]
    assert ca.asked == Counter({"/ca.p7c": 1, "/ocsp": 2})


def test_no_issuer_to_verify_with_is_unknown_without_asking(ca, clock):
    status = checker(clock).check(leaf(ca), [OTHER.cert, ca.pki.impostor().cert])
    assert (status.state, status.problem) == ("unknown", Problem.NO_ISSUER)
    assert "no http caIssuers URL" in status.detail and "CN=certlc test root" in status.detail
    assert ca.asked == Counter()


def test_nothing_to_ask_makes_no_request(ca, clock):
    cert = ca.pki.leaf(["https://ocsp.example/"], ["ldap:///CN=cdp"]).public_bytes(DER)
    status = checker(clock).check(cert, [ROOT.cert])
    assert (status.state, status.problem) == ("unknown", Problem.NO_SOURCE)
    assert ca.asked == Counter()


def test_threads_checking_one_crls_certificates_fetch_it_once(ca, clock):
    revocation = checker(clock)
    ca.delay = 0.05  # long enough for every thread to be waiting on the first one's fetch
    certs = [leaf(ca, ocsp_path=None) for _ in range(8)]
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(revocation.check(c, [ROOT.cert]).state)) for c in certs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["good"] * 8
    assert ca.asked == Counter({"/crl": 1})


def test_a_crl_over_the_size_cap_is_unknown(ca, clock):
    status = checker(clock, max_bytes=100).check(leaf(ca, ocsp_path=None), [ROOT.cert])
    assert (status.state, status.problem) == ("unknown", Problem.UNREACHABLE)
    assert "more than the 100 certlc reads" in status.detail


def test_a_slow_responder_times_out_into_unknown(ca, clock):
    ca.delay = 0.5
    status = checker(clock, timeout=0.1).check(leaf(ca, crl=None), [ROOT.cert])
    assert (status.state, status.problem) == ("unknown", Problem.UNREACHABLE)
    assert status.detail == f"{ca.url('/ocsp')} did not answer within 0.1 s"
