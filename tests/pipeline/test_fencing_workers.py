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
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from localazure.ports import poll_until
from localazure.refusing_ca import SlowRefusingCfssl

from renewal.clients import queue_client
from renewal.messages import RenewalRequest
from tests.pipeline.helpers import alerts_for, audit, certlc_worker, no_pending, seed, unique, versions

LEASE = 15  # seconds: the shortest blob lease, so the pause stays short
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def fenced_settings(stack: Any, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The stack's settings on a queue nobody else polls, with the shortest lease."""
    values = {**stack.settings, "CERTLC_QUEUE_NAME": f"fence-{uuid.uuid4().hex[:10]}", "CERTLC_LOCK_SECONDS": "15"}
    return settings_file(tmp_path / "local.settings.json", values), values


def settings_file(path: Path, values: dict[str, str]) -> Path:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return path


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
        with certlc_worker(settings, tmp_path / "a.log") as first:
            queue.send_message(RenewalRequest("kv1", name, "manual", version=version).to_json())
            poll_until(lambda: fault_hits(stack) >= 2, timeout=30, interval=0.05, what="worker A's first read")
            first.send_signal(signal.SIGSTOP)  # Key Vault's answer arrives while A is stopped
            time.sleep(LEASE + 3)  # A's lease lapses
            with certlc_worker(settings, tmp_path / "b.log"):
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


@pytest.mark.parametrize("meanwhile", ["merged", "waiting for the CA"])
def test_a_holder_paused_while_its_ca_refuses_records_no_failure_and_spares_the_live_renewal(
    stack: Any, alerts: Any, fenced_settings: tuple[Path, dict[str, str]], tmp_path: Path, meanwhile: str
) -> None:
    """A's CA takes 6 s to refuse; A is stopped meanwhile and its lease lapses; B (another CA) renews, or waits for
    its CA's approval; A resumes to the refusal. Before fencing A then wrote a failed-store entry and sent a failure
    alert for a certificate that was renewed, or deleted B's live pending operation so that B's merge failed."""
    from azure.core.exceptions import ResourceExistsError

    from renewal.ca.local import LocalCA

    _, values = fenced_settings
    name = unique("fence-ca")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"})
    version = old.properties.version
    refusing = SlowRefusingCfssl(delay=6)
    a_settings = settings_file(tmp_path / "a.json", {**values, "CERTLC_CA": "cfssl", "CERTLC_CFSSL_URL": refusing.url})
    b_profile = {"CERTLC_CA_PROFILE": "approval"} if meanwhile == "waiting for the CA" else {}
    b_settings = settings_file(tmp_path / "b.json", {**values, "CERTLC_CA": "local", **b_profile})
    queue = queue_client(values)
    queue.create_queue()
    try:
        with certlc_worker(a_settings, tmp_path / "a.log") as first:
            queue.send_message(RenewalRequest("kv1", name, "manual", version=version).to_json())
            assert refusing.asked.wait(60), "worker A never asked its CA"
            first.send_signal(signal.SIGSTOP)  # the refusal arrives while A is stopped
            time.sleep(LEASE + 3)
            with certlc_worker(b_settings, tmp_path / "b.log"):
                queue.send_message(RenewalRequest("kv1", name, "manual", version=version).to_json())
                if meanwhile == "merged":
                    poll_until(lambda: len(versions(stack, name)) == 2, timeout=60, what="worker B's renewal")
                else:
                    poll_until(
                        lambda: any(r["event"] == "pending" for r in audit(stack, name)),
                        timeout=60,
                        what=lambda: f"worker B waiting for its CA: {trail_of(stack, name)}",
                    )
                first.send_signal(signal.SIGCONT)
                poll_until(
                    lambda: any(r.get("reason") == "lock_lost" for r in audit(stack, name)),
                    timeout=60,
                    what=lambda: f"worker A fenced off: {trail_of(stack, name)}",
                )
                if meanwhile == "waiting for the CA":
                    assert not no_pending(stack, name), "B's pending operation must outlive A's refusal"
                    (pending,) = [r for r in audit(stack, name) if r["event"] == "pending"][:1]
                    LocalCA(Path(values["CERTLC_LOCAL_CA_DIR"])).approve(pending["ca_request_id"])
                    poll_until(
                        lambda: len(versions(stack, name)) == 2,
                        timeout=60,
                        what=lambda: f"B merges after the approval: {trail_of(stack, name)}",
                    )
                poll_until(
                    lambda: queue.get_queue_properties().approximate_message_count == 0,
                    timeout=60,
                    what=lambda: f"every message settled: {trail_of(stack, name)}",
                )
    finally:
        refusing.close()
    records, trail = audit(stack, name), str(trail_of(stack, name))
    assert len(versions(stack, name)) == 2 and no_pending(stack, name), trail
    assert not any(r["event"] == "failed" for r in records), trail  # no failure recorded by A
    assert not [a for a in alerts_for(alerts, name) if a["kind"] == "renewal_failed"], trail
    failed_store = queue_client(values, f"{values['CERTLC_QUEUE_NAME']}-failed")
    with contextlib.suppress(ResourceExistsError):
        failed_store.create_queue()  # absent unless something failed
    assert not [m for m in failed_store.peek_messages(max_messages=32) if name in m.content], trail
