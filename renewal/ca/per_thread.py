"""One client per thread for CA adapters the worker's threads share.

The Functions host runs a batch of queue messages at once on a thread pool, and the runtime (with its CA adapters)
is built once per process. An HTTP client with connection-bound state must not be shared across those threads:
NTLM authenticates a TCP connection, and requests-ntlm hands the connection back to the pool between the
handshake's legs, so two renewals at once can send one's AUTHENTICATE on the other's connection and both are
refused (requests-ntlm's advice: one Session per NTLM authentication context); the ACME client keeps its
replay nonces in an unguarded set. A client per thread keeps each handshake and nonce on its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")


class PerThread(Generic[_T]):
    """``get()`` returns this thread's client, made by ``make`` on the thread's first call."""

    def __init__(self, make: Callable[[], _T]) -> None:
        self._make = make
        self._local = threading.local()

    def get(self) -> _T:
        client: _T | None = getattr(self._local, "client", None)
        if client is None:
            client = self._make()
            self._local.client = client
        return client
