"""The local CA's publication point: its CRL and its certificate over plain HTTP, as a CA's web server publishes them
at the URLs its certificates carry (RFC 5280 expects http for both: the CRL is signed, TLS adds nothing).

The CRL is the one the CA folder holds, signed anew by ``LocalCA.crl_der`` once its nextUpdate passed on ``clock``
(the stack's emulated clock, so a moved clock does not make it stale for the functions).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CRL_PATH = "/local-ca.crl"
CERTIFICATE_PATH = "/local-ca.cer"


class CaPublisher:
    def __init__(self, ca_dir: Path, clock: Callable[[], datetime] | None = None) -> None:
        from renewal.ca.local import LocalCA

        self._ca = LocalCA(Path(ca_dir), clock=clock)
        ca = self._ca

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == CRL_PATH:
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
        return self.url + CRL_PATH

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
