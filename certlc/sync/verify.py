"""Checks which certificate a TLS endpoint serves; servers reload asynchronously, so it polls.

The handshake is ``renewal.targets.probe.probe``'s, the one the app uses to see what its targets serve: no chain
or name check, the leaf compared by thumbprint with the certificate just written."""

from __future__ import annotations

import time
from dataclasses import dataclass

from certlc.sync.errors import SyncConfigError, SyncError
from renewal.clock import utc_now
from renewal.targets.model import Probe
from renewal.targets.probe import probe


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


def served(endpoint: Endpoint, timeout: float = 5.0) -> Probe:
    """What the endpoint serves now: SNI ``server_name`` (else the host), connecting to ``host``."""
    connect = endpoint.host if endpoint.server_name else None
    return probe(endpoint.server_name or endpoint.host, endpoint.port, connect=connect, timeout=timeout, now=utc_now)


def wait_until_served(endpoint: Endpoint, expected: str, deadline_seconds: float, interval: float = 0.25) -> Probe:
    """Polls until the leaf with thumbprint ``expected`` is served and returns that probe; raises SyncError with
    what was last seen once the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        seen = served(endpoint, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
        if seen.thumbprint == expected:
            return seen
        if time.monotonic() >= deadline:
            last = f"certificate {seen.thumbprint}" if seen.reached else f"no TLS answer ({seen.error})"
            raise SyncError(
                f"{endpoint} did not serve certificate {expected} within {deadline_seconds:g} s; last saw {last}"
            )
        time.sleep(interval)
