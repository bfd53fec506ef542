"""The ``/certsrv`` web-enrollment pages over a ``LocalCA``: templates are the CA's profiles.

Request ids are integers as in AD CS. A template whose profile requires approval leaves
requests pending (AD CS "CA certificate manager approval") until ``approve`` or ``deny``.
Authentication is a ``Gate`` (``auth``): Basic, or NTLM or Kerberos bound to the TLS connection. HTTP/1.1 keeps
each connection open across the 401 handshake, and each connection's handler keeps its own state. The CA's CRL is
served without authentication where AD CS publishes it, ``/CertEnroll/<CA name>.crl``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from localazure.emulators.adcs import pages
from localazure.emulators.adcs.auth import Connection, Gate
from renewal.ca.base import CaResult, Denied, Issued
from renewal.ca.local import LocalCA


@dataclass
class _Record:
    state: str  # issued | pending | denied
    certificate_pem: str = ""
    local_id: str = ""
    message: str = ""


class EnrollmentBook:
    """What the CA database holds: one record per request id."""

    def __init__(self, ca: LocalCA) -> None:
        self.ca = ca
        self._lock = threading.Lock()
        self._records: dict[int, _Record] = {}

    def submit(self, csr_pem: str, template: str | None) -> tuple[int, _Record]:
        if not template:
            record = _Record("denied", message=pages.NO_TEMPLATE)
        elif template not in self.ca.profiles:
            record = _Record("denied", message=pages.UNSUPPORTED_TEMPLATE)
        else:
            record = self._record_for(self.ca.submit(csr_pem.encode(), template))
        with self._lock:
            request_id = len(self._records) + 1
            self._records[request_id] = record
        return request_id, record

    def fetch(self, request_id: int) -> _Record | None:
        """The record, with a pending one brought up to date with the CA's decision."""
        with self._lock:
            record = self._records.get(request_id)
            if record is not None and record.state == "pending":
                record = self._records[request_id] = self._record_for(self.ca.poll(record.local_id))
            return record

    def approve(self, request_id: int) -> None:
        self.ca.approve(self._pending_id(request_id))

    def deny(self, request_id: int, message: str) -> None:
        self.ca.deny(self._pending_id(request_id), message)

    def _pending_id(self, request_id: int) -> str:
        record = self.fetch(request_id)
        if record is None or record.state != "pending":
            raise ValueError(f"request {request_id} is not pending")
        return record.local_id

    @staticmethod
    def _record_for(result: CaResult) -> _Record:
        if isinstance(result, Issued):
            return _Record("issued", certificate_pem=result.chain_pem[0])
        if isinstance(result, Denied):
            return _Record("denied", message=result.reason)
        return _Record("pending", local_id=result.request_id)


class AdcsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], book: EnrollmentBook, gate: Gate) -> None:
        super().__init__(address, Handler)
        self.book = book
        self.gate = gate
        self.faults: list[tuple[int, str | None]] = []  # injected answers: HTTP status, for any path or one


class Handler(BaseHTTPRequestHandler):
    server: AdcsServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection_auth = Connection()  # one handler per TCP connection: NTLM's unit of authentication
        self.answer_headers: dict[str, str] = {}  # what the gate adds to an admitted answer (Kerberos's last token)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        ca = self.server.book.ca
        if urlsplit(self.path).path == crl_path(ca):  # a CDP is read by anyone checking a certificate: no logon
            self._send(200, ca.crl_der(), "application/pkix-crl", {})
            return
        if not self._admitted():
            return
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        routes = {
            "/certsrv/": lambda: self._html(pages.home()),
            "/certsrv/certcarc.asp": lambda: self._html(pages.ca_certificates(0)),
            "/certsrv/certnew.cer": lambda: self._certificate(query),
            "/certsrv/certnew.p7b": lambda: self._chain(query),
        }
        routes.get(url.path, self._not_found)()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if not self._admitted():
            return
        if urlsplit(self.path).path != "/certsrv/certfnsh.asp" or form.get("Mode") != "newreq":
            self._not_found()
            return
        request_id, record = self.server.book.submit(form.get("CertRequest", ""), _template(form.get("CertAttrib", "")))
        page = {"issued": pages.issued, "pending": pages.pending}.get(record.state)
        self._html(page(request_id) if page else pages.denied(request_id, record.message))

    def _admitted(self) -> bool:
        self.answer_headers = {}
        faults = self.server.faults
        if faults and faults[0][1] in (None, urlsplit(self.path).path):
            self._send(faults.pop(0)[0], b"injected failure", "text/plain")
            return False
        verdict = self.server.gate.check(self.headers.get("Authorization"), self.connection_auth)
        if verdict.principal:
            self.answer_headers = {"WWW-Authenticate": verdict.challenge} if verdict.challenge else {}
            return True
        body = b"401 - Unauthorized: Access is denied due to invalid credentials."
        self._send(401, body, "text/html", {"WWW-Authenticate": verdict.challenge})
        return False

    def _certificate(self, query: dict[str, str]) -> None:
        ca = self.server.book.ca
        if query.get("ReqID") == "CACert":
            self._send(200, _encode(ca.certificate, query.get("Enc")), "application/pkix-cert")
            return
        request_id = query.get("ReqID", "")
        record = self.server.book.fetch(int(request_id)) if request_id.isdigit() else None
        if record is None:
            self._html(pages.fetch_error(f"Error retrieving request {request_id}: not found. 0x80094004"))
        elif record.state == "issued":
            leaf = x509.load_pem_x509_certificate(record.certificate_pem.encode())
            self._send(200, _encode(leaf, query.get("Enc")), "application/pkix-cert")
        else:
            self._html(pages.fetch_error(pages.UNDER_SUBMISSION if record.state == "pending" else record.message))

    def _chain(self, query: dict[str, str]) -> None:
        if query.get("ReqID") != "CACert":
            self._not_found()
            return
        encoding = serialization.Encoding.DER if query.get("Enc") == "bin" else serialization.Encoding.PEM
        body = pkcs7.serialize_certificates([self.server.book.ca.certificate], encoding)
        self._send(200, body, "application/x-pkcs7-certificates")

    def _not_found(self) -> None:
        self._send(404, b"404 - File or directory not found.", "text/html")

    def _html(self, page: str) -> None:
        self._send(200, page.encode(), "text/html; charset=UTF-8")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or self.answer_headers).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def crl_path(ca: LocalCA) -> str:
    """Where AD CS publishes a CA's CRL by default: ``/CertEnroll/<CA name>.crl``, the CA name being its CN."""
    names = ca.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"/CertEnroll/{quote(str(names[0].value))}.crl"


def _template(attributes: str) -> str | None:
    """The ``CertificateTemplate:<name>`` line of the request attributes."""
    for line in attributes.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "certificatetemplate":
            return value.strip()
    return None


def _encode(cert: x509.Certificate, enc: str | None) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER if enc == "bin" else serialization.Encoding.PEM)
