"""The TLS front: one loopback listener that answers each handshake with what the emulated service bound to the SNI
host name serves (``serving.Serving``), then a bare HTTP 200 to whatever request follows.

A handshake without SNI gets the emulator's own loopback certificate; a host name no resource binds is refused with
the ``unrecognized_name`` alert, as a front end with no listener for that name would fail the handshake.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from typing import Any

from .serving import Serving

log = logging.getLogger(__name__)
IO_TIMEOUT = 5.0


class TlsFront:
    def __init__(self, serving: Serving, default: ssl.SSLContext, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.serving = serving

        def pick(sslobj: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> int | None:
            if server_name is None:
                return None
            try:
                served = serving.served(server_name)
            except Exception:  # a bug here must not kill the listener: the handshake fails instead
                log.exception("serving %s failed", server_name)
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
            if served is None:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            sslobj.context = served.context
            return None

        default.sni_callback = pick
        self._context = default

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                raw: socket.socket = self.request
                raw.settimeout(IO_TIMEOUT)
                try:
                    with default.wrap_socket(raw, server_side=True) as tls:
                        try:
                            tls.recv(4096)
                        except (TimeoutError, ssl.SSLError, OSError):
                            return
                        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except (ssl.SSLError, OSError) as exc:
                    log.debug("handshake ended: %s", exc)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="consumers-tls", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def stop(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
