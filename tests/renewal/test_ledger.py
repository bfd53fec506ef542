"""The renewal lock and record on real blob leases (Azurite)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from localazure.ports import poll_until

from renewal.errors import ConfigError
from renewal.ledger import BlobLedger, RenewalRecord, blob_name, ledger_from_env

pytestmark = pytest.mark.azurite

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def ledger(azurite: Any) -> BlobLedger:
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(azurite.connection_string, f"locks-{uuid.uuid4().hex[:12]}")
    return BlobLedger(container, lease_seconds=15, wait_seconds=0)  # the container is created on first use


def record(owner: str = "a", **changes: Any) -> RenewalRecord:
    return RenewalRecord(**({"owner": owner, "state": "pending", "next_action_at": NOW} | changes))


def test_one_holder_at_a_time_and_the_record_survives_the_holder(ledger: BlobLedger) -> None:
    with ledger.hold("kv1", "Web") as first:
        assert first is not None and first.record is None
        with ledger.hold("KV1", "web") as second:  # the names are Key Vault's: case-insensitive
            assert second is None
        first.save(record(ca_request_id="req-7", chain_pem=("-----BEGIN CERTIFICATE-----",), version="v1"))
    assert ledger.peek("kv1", "web") == record(
        ca_request_id="req-7", chain_pem=("-----BEGIN CERTIFICATE-----",), version="v1"
    )
    with ledger.hold("kv1", "web") as again:
        assert again is not None and again.record is not None and again.record.ca_request_id == "req-7"
        again.clear()
    assert ledger.peek("kv1", "web") is None
    assert ledger.peek("kv1", "never-locked") is None


def test_a_short_hold_elsewhere_is_waited_for(ledger: BlobLedger) -> None:
    patient = BlobLedger(ledger._container, lease_seconds=15, wait_seconds=5)
    released = threading.Event()

    def brief() -> None:
        with ledger.hold("kv1", "brief") as held:
            assert held is not None
            released.wait(5)
            time.sleep(0.5)

    holder = threading.Thread(target=brief)
    holder.start()
    time.sleep(0.5)
    released.set()
    with patient.hold("kv1", "brief") as waited:
        assert waited is not None  # taken once the other let go, not refused
    holder.join(10)


def test_a_long_renewal_keeps_its_lease_and_a_dead_holder_loses_it(ledger: BlobLedger, azurite: Any) -> None:
    """Held past the 15 s lease, the keeper renews it; a lease nobody renews lapses and is taken over."""
    from azure.storage.blob import ContainerClient

    seen: dict[str, Any] = {}
    container: ContainerClient = ledger._container
    with ledger.hold("kv1", "dead") as _:
        pass  # creates the blob
    dead = container.get_blob_client(blob_name("kv1", "dead")).acquire_lease(lease_duration=15)  # then "dies"
    started = time.monotonic()

    def long_renewal() -> None:
        with ledger.hold("kv1", "long") as held:
            seen["long"] = held is not None
            time.sleep(17)
            held.save(record("long-one"))  # writes under a lease older than 15 s: renewed in the background

    worker = threading.Thread(target=long_renewal)
    worker.start()
    try:
        time.sleep(16)
        with ledger.hold("kv1", "long") as other:
            seen["other"] = other

        def taken_over() -> bool:
            with ledger.hold("kv1", "dead") as taker:
                return taker is not None

        poll_until(taken_over, timeout=10, interval=0.5, what="the dead holder's lease taken over")
        seen["taken_after"] = time.monotonic() - started
    finally:
        worker.join(30)
    assert dead.id  # the dead holder's lease existed
    assert seen["long"] and seen["other"] is None
    assert ledger.peek("kv1", "long") == record("long-one")
    assert 15 <= seen["taken_after"] < 25


def test_a_record_is_live_until_its_owner_is_late_by_the_grace() -> None:
    due = record(next_action_at=NOW)
    assert due.is_live(NOW + timedelta(minutes=14))
    assert not due.is_live(NOW + timedelta(minutes=16))


def test_what_is_not_a_record_is_no_lock() -> None:
    assert RenewalRecord.from_json("") is None
    assert RenewalRecord.from_json('{"owner": "x"}') is None
    assert RenewalRecord.from_json("not json") is None
    assert RenewalRecord.from_json(record(ca="local").to_json()) == record(ca="local")


@pytest.mark.parametrize("value", ["10", "61", "a minute"])
def test_the_lease_length_is_checked(value: str) -> None:
    must = "(is not a whole number of seconds|must be at least 15 and at most 60 seconds)"
    message = rf"^CERTLC_LOCK_SECONDS={value!r} {must}$"
    with pytest.raises(ConfigError, match=message):
        ledger_from_env({"CERTLC_LOCK_SECONDS": value, "CertlcStorage": "UseDevelopmentStorage=true"})
