"""Fencing on real blob leases (Azurite): a holder stopped with SIGSTOP past its lease, then resumed, cannot write
the record again, whatever happened meanwhile: another holder still has the lock, or had it and let it go.

The holder runs in its own process (so SIGSTOP pauses its lease keeper too, as a frozen VM would) and reads
commands from stdin: ``write`` saves a record and prints ``written`` or ``lost``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from renewal.ledger import BlobLedger, LockLost, RenewalRecord

pytestmark = pytest.mark.azurite

LEASE = 15  # the shortest blob lease: the pause must outlast it
HOLDER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from azure.storage.blob import ContainerClient
    from renewal.ledger import BlobLedger, LockLost, RenewalRecord

    container = ContainerClient.from_connection_string(sys.argv[1], sys.argv[2])
    ledger = BlobLedger(container, lease_seconds=int(sys.argv[3]), wait_seconds=0)
    with ledger.hold("kv1", "web") as held:
        print("held", flush=True)
        for line in sys.stdin:
            try:
                held.save(RenewalRecord("paused-holder", "working", datetime.now(UTC), intent="create_pending"))
                print("written", flush=True)
            except LockLost as exc:
                print("lost", exc, flush=True)
    """
)


@pytest.fixture
def holder(azurite: Any) -> Iterator[tuple[subprocess.Popen[str], BlobLedger]]:
    """A process holding kv1/web's lock, and a second ledger on the same container (another instance)."""
    from azure.storage.blob import ContainerClient

    name = f"locks-{uuid.uuid4().hex[:12]}"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, azurite.connection_string, name, str(LEASE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        other = BlobLedger(ContainerClient.from_connection_string(azurite.connection_string, name), LEASE, 0)
        yield process, other
    finally:
        process.kill()
        process.wait(10)


def ask_to_write(process: subprocess.Popen[str]) -> str:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("write\n")
    process.stdin.flush()
    return process.stdout.readline().strip()


def pause_past_the_lease(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGSTOP)
    time.sleep(LEASE + 2)


def record(owner: str) -> RenewalRecord:
    return RenewalRecord(owner, "working", datetime.now(UTC), version="v2")


def test_a_holder_that_was_not_paused_writes(holder: tuple[subprocess.Popen[str], BlobLedger]) -> None:
    process, other = holder
    assert ask_to_write(process) == "written"
    with other.hold("kv1", "web") as second:
        assert second is None  # the first still holds it


def test_a_paused_holder_cannot_write_while_another_holds_the_lock(
    holder: tuple[subprocess.Popen[str], BlobLedger],
) -> None:
    process, other = holder
    pause_past_the_lease(process)
    with other.hold("kv1", "web") as second:
        assert second is not None  # the lease lapsed while its holder was stopped
        second.save(record("second"))
        os.kill(process.pid, signal.SIGCONT)
        assert ask_to_write(process).startswith("lost")
        assert second.record is not None and second.record.owner == "second"


def test_a_paused_holder_cannot_write_after_another_came_and_went(
    holder: tuple[subprocess.Popen[str], BlobLedger],
) -> None:
    process, other = holder
    pause_past_the_lease(process)
    with other.hold("kv1", "web") as second:
        assert second is not None
        second.save(record("second"))
    os.kill(process.pid, signal.SIGCONT)  # nobody holds the lock now, but the paused holder's lease is history
    assert ask_to_write(process).startswith("lost")
    found = other.peek("kv1", "web")
    assert found is not None and found.owner == "second"


def test_a_holder_whose_lease_was_broken_and_taken_is_fenced_off_at_once(azurite: Any) -> None:
    """Within its own lease time (so no clock says so), storage's 412 alone tells the holder it lost the lock."""
    from azure.storage.blob import BlobLeaseClient, ContainerClient

    container = ContainerClient.from_connection_string(azurite.connection_string, f"locks-{uuid.uuid4().hex[:12]}")
    ledger = BlobLedger(container, lease_seconds=60, wait_seconds=0)
    with ledger.hold("kv1", "web") as first:
        assert first is not None
        blob = container.get_blob_client("kv1/web")
        BlobLeaseClient(blob).break_lease(lease_break_period=0)  # as an operator or a bug might
        BlobLeaseClient(blob).acquire(lease_duration=15)  # and another holder takes it
        with pytest.raises(LockLost, match="passed to another holder"):
            first.save(record("first"))


def test_after_losing_the_lease_a_holder_may_still_record_its_notice_but_never_over_another_record(
    azurite: Any,
) -> None:
    """Storage dropped the lease (an outage): the holder's bookkeeping after its effects is written without it, only
    while the blob is as the holder left it; once another holder wrote, the holder is fenced off."""
    from azure.storage.blob import BlobLeaseClient, ContainerClient

    container = ContainerClient.from_connection_string(azurite.connection_string, f"locks-{uuid.uuid4().hex[:12]}")
    ledger = BlobLedger(container, lease_seconds=60, wait_seconds=0)
    blob = container.get_blob_client("kv1/web")
    with ledger.hold("kv1", "web") as first:
        assert first is not None
        first.save(record("first"))
        BlobLeaseClient(blob).break_lease(lease_break_period=0)  # the lease is gone; nobody else holds it
        first.save_if_unchanged(dataclasses.replace(record("first"), notified=True))
        assert ledger.peek("kv1", "web").notified  # written: nobody had written since
        other = BlobLedger(container, lease_seconds=15, wait_seconds=0)
        with other.hold("kv1", "web") as second:
            assert second is not None
            second.save(record("second"))
        with pytest.raises(LockLost):
            first.save_if_unchanged(dataclasses.replace(record("first"), notified=True))
    assert ledger.peek("kv1", "web").owner == "second"
