"""Waiting in the main thread for what a signal handler sets (SIGTERM, SIGHUP): the stack, the worker, the emulators.

CPython runs a signal handler in the main thread only, between bytecodes. The kernel may deliver a process-directed
signal to any other thread; a main thread then blocked on a lock with no timeout is not woken, and the handler waits
for a wake-up that never comes (a `certlc local down` that found its stack still running 30 s later). Waking every
``poll`` seconds lets the handler run.
"""

from __future__ import annotations

import threading

POLL_SECONDS = 0.5


def wait_for_signal(event: threading.Event, poll: float = POLL_SECONDS) -> None:
    """Return once ``event`` is set, checking at least every ``poll`` seconds so pending signal handlers run."""
    while not event.wait(poll):
        pass
