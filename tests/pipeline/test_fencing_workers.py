"""A renewal holder paused past its lease (SIGSTOP: a long GC, a frozen VM) and resumed after another worker
renewed: it must not act again. Two real ``certlc worker`` processes on a queue of their own, the shared lock
container, the Key Vault emulator and the local CA of the session's stack.

Worker A takes the renewal and is stopped while Key Vault's answer to its first read is on its way (a latency
fault on that one request); its lease lapses; worker B renews; A resumes holding a stale read. Before fencing,
A then created a second pending operation and asked the CA again.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localazure.ports import poll_until

from renewal.clients import queue_client
from renewal.messages import RenewalRequest
from tests.environment import without_certlc_settings
from tests.pipeline.helpers import alerts_for, audit, no_pending, seed, unique, versions

ROOT = Path(__file__).resolve().parents[2]
WORKER = ("worker", "--max-polling-interval", "0.2")
LEASE = 15  # seconds: the shortest blob lease, so the pause stays short
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def fenced_settings(stack: Any, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The stack's settings on a queue nobody else polls, with the shortest lease."""
    values = {**stack.settings, "CERTLC_QUEUE_NAME": f"fence-{uuid.uuid4().hex[:10]}", "CERTLC_LOCK_SECONDS": "15"}
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return path, values


@contextlib.contextmanager
def worker(settings: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "certlc", "-v", "--settings", str(settings), *WORKER],
            cwd=ROOT,
            env=without_certlc_settings(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        poll_until(lambda: "certlc worker: polling" in log.read_text(errors="replace"), timeout=60, what="a worker")
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def trail_of(stack: Any, name: str) -> list[tuple[str, str | None]]:
    return [(r["event"], r.get("reason")) for r in audit(stack, name)]


def fault_hits(stack: Any) -> int:
    return sum(rule["hits"] for rule in stack.control.call("GET", "faults"))


def test_a_holder_paused_in_its_first_read_does_nothing_after_another_renewed(
    stack: Any, alerts: Any, fenced_settings: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    settings, values = fenced_settings
    name = unique("fence-read")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"})
    version = old.properties.version  # each message names the version it is about, as an event does
    queue = queue_client(values)
    queue.create_queue()
    # A's first read: the SDK's challenge request (answered 401), then the read itself; both are late
    stack.control.add_fault(latency_ms=4000, method="GET", path=f"/certificates/{name}/?$", count=2)
    try:
        with worker(settings, tmp_path / "a.log") as first:
            queue.send_message(RenewalRequest("kv1", name, "manual", version=version).to_json())
            poll_until(lambda: fault_hits(stack) >= 2, timeout=30, interval=0.05, what="worker A's first read")
            first.send_signal(signal.SIGSTOP)  # Key Vault's answer arrives while A is stopped
            time.sleep(LEASE + 3)  # A's lease lapses
            with worker(settings, tmp_path / "b.log"):
                queue.send_message(RenewalRequest("kv1", name, "manual", version=version).to_json())
                poll_until(lambda: len(versions(stack, name)) == 2, timeout=60, what="worker B's renewal")
                first.send_signal(signal.SIGCONT)
                poll_until(
                    lambda: (
                        "Executed 'Functions.renew'" in (tmp_path / "a.log").read_text(errors="replace")
                        and queue.get_queue_properties().approximate_message_count == 0
                    ),
                    timeout=60,
                    what=lambda: f"worker A's invocation, and all it queued, settled: {trail_of(stack, name)}",
                )
    finally:
        stack.control.clear_faults()
    records, trail = audit(stack, name), str(trail_of(stack, name))
    assert sum(r["event"] == "submitted" for r in records) == 1, trail  # one CA request
    assert sum(r["event"] == "csr_created" for r in records) == 1, trail  # one pending operation
    assert len(versions(stack, name)) == 2 and no_pending(stack, name), trail
    assert not [a for a in alerts_for(alerts, name) if a["kind"] == "renewal_failed"]
    assert not any(r["event"] == "failed" for r in records), trail
    assert ("retried", "lock_lost") in trail_of(stack, name), trail  # A stopped at its fence, quietly
