"""A CA's publication point: its CRL and its certificate over plain HTTP, as a CA's web server publishes them at the
URLs its certificates carry (RFC 5280 expects http for both: the CRL is signed, TLS adds nothing). The local stack's
CA publishes here, and so does the AD CS emulator's, at AD CS's own ``/CertEnroll`` path.

The CRL is the one the CA folder holds, signed anew by ``LocalCA.crl_der`` once its nextUpdate passed on the CA's
clock (the stack's emulated clock, so a moved clock does not make it stale for the functions).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from renewal.ca.local import LocalCA

CRL_PATH = "/local-ca.crl"
CERTIFICATE_PATH = "/local-ca.cer"


class CaPublisher:
    def __init__(self, ca: LocalCA, crl_path: str = CRL_PATH) -> None:
        self._crl_path = crl_path

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == crl_path:
                    self._send(ca.crl_der(), "application/pkix-crl")
                elif self.path == CERTIFICATE_PATH:
                    from cryptography.hazmat.primitives import serialization

                    self._send(ca.certificate.public_bytes(serialization.Encoding.DER), "application/pkix-cert")
                else:
                    self.send_error(404, "the local CA publishes its CRL and its certificate only")

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-ca-publisher", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def crl_url(self) -> str:
        return self.url + self._crl_path

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
