"""Checks which certificate a TLS endpoint serves; servers reload asynchronously, so it polls."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from certlc.sync.bundle import fingerprint
from certlc.sync.errors import SyncConfigError, SyncError


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    server_name: str | None = None

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(value: str, server_name: str | None = None) -> Endpoint:
    """``host:port`` or ``[v6]:port``."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SyncConfigError(f"--verify {value!r} is not host:port (e.g. 127.0.0.1:443 or [::1]:8443)")
    return Endpoint(host, int(port), server_name)


def served_fingerprint(endpoint: Endpoint, timeout: float = 5.0) -> str:
    """SHA-256 of the leaf the endpoint serves; the chain is not validated, only compared with the file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # identity is checked by fingerprint, not by a CA
    server_name = endpoint.server_name or endpoint.host
    with (
        socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError("the server sent no certificate")
    return fingerprint(der)


def wait_until_served(endpoint: Endpoint, expected: str, deadline_seconds: float, interval: float = 0.25) -> None:
    """Polls until ``expected`` is served; raises SyncError with what was last seen once the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    last = "nothing"
    while True:
        try:
            seen = served_fingerprint(endpoint, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
        except (OSError, ssl.SSLError) as exc:
            last = f"no TLS answer ({exc})"
        else:
            if seen == expected:
                return
            last = f"certificate sha256 {seen[:16]}…"
        if time.monotonic() >= deadline:
            raise SyncError(
                f"{endpoint} did not serve certificate sha256 {expected[:16]}… within "
                f"{deadline_seconds:g} s; last saw {last}"
            )
        time.sleep(interval)
