"""A stop signal the kernel hands to another thread still stops a main thread waiting for it
(``renewal.signals.wait_for_signal``): the stack, the worker and the emulators wait so."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

PROGRAM = textwrap.dedent(
    """
    import signal, sys, threading, time
    from renewal.signals import wait_for_signal

    stop, parked = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    other = threading.Thread(target=parked.wait, daemon=True)
    other.start()
    # SIGTERM delivered to the other thread, as the kernel may deliver a process-directed one
    threading.Timer(0.3, signal.pthread_kill, (other.ident, signal.SIGTERM)).start()
    {wait}
    print("stopped", flush=True)
    """
)


def run(wait: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM.format(wait=wait)], capture_output=True, text=True, timeout=20, check=False
    )


def test_a_signal_delivered_to_another_thread_stops_the_wait() -> None:
    done = run("wait_for_signal(stop)")
    assert (done.returncode, done.stdout.strip()) == (0, "stopped"), done.stderr


def test_a_plain_wait_would_not_notice_it() -> None:
    """The failure the helper exists for: the same signal, and a plain wait, still waiting seconds later."""
    done = run("print('stopped' if stop.wait(3) else 'still waiting', flush=True); sys.exit(0)")
    assert done.stdout.strip().splitlines()[0] == "still waiting", done.stdout + done.stderr
