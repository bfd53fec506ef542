"""Free loopback ports and readiness polling for the local test servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port the OS reports free right now.

    Another process can take it before the server binds it: starters retry on "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def poll_until(
    ready: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str | Callable[[], str] = "condition",
) -> None:
    """Calls ``ready`` until it is true, sleeping ``interval`` between calls; then ``TimeoutError`` naming ``what``
    after ``timeout`` seconds (a callable ``what`` describes the state at that moment)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise TimeoutError(f"{described} not reached within {timeout:g} s")
        time.sleep(interval)
