"""A TLS server for the sync tests: serves FULLCHAIN/KEY, re-reads them on SIGHUP like nginx does.

Usage: python tls_server.py FULLCHAIN KEY; prints its port on the first line. A reload whose files
do not load keeps serving the previous certificate (as real servers do).
"""

from __future__ import annotations

import signal
import socket
import ssl
import sys


def load(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def main(cert: str, key: str) -> None:
    state = {"context": load(cert, key)}

    def reload(*_: object) -> None:
        try:
            state["context"] = load(cert, key)
        except (OSError, ssl.SSLError) as exc:
            print(f"reload failed: {exc}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with socket.create_server(("127.0.0.1", 0)) as server:
        print(server.getsockname()[1], flush=True)
        while True:
            conn, _ = server.accept()
            conn.settimeout(5)
            try:
                with state["context"].wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
