"""Key Vault's create budget, shared through one blob in Azurite: held across pacers, a paced renewal goes back to
the queue for its turn with no attempt spent, and a 429 all the same pauses the vault for everyone."""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

from renewal.ledger import lock_container
from renewal.messages import RenewalRequest
from renewal.pacing.budget import CATCH_UP, Budget, Limits, VaultState
from renewal.pacing.limits import KeyKind
from renewal.pacing.store import BLOB_NAME, BlobPacer, Paced
from tests.pipeline.helpers import (
    HandClock,
    audit,
    deliver,
    drain_until,
    functions_clock,
    merged,
    no_pending,
    seed,
    unique,
    versions,
)

pytestmark = pytest.mark.timeout(180)


def container(stack, name: str):
    return lock_container(stack.settings | {"CERTLC_LOCK_CONTAINER": name})


def test_pacers_sharing_one_blob_never_grant_past_the_cap_in_any_window(stack) -> None:
    """Four pacers, as four instances would hold them (each its own client), three threads each, one vault: the
    grants the blob records are evenly spaced at 95 % of Key Vault's rate, never more than its 20 in any window,
    and conflicting writes are retried, none lost."""
    name = unique("budget").lower()
    limits = Limits(window=1.0)
    pacers = [BlobPacer(container(stack, name), limits, {"kv1": "sub"}, max_wait=30.0) for _ in range(4)]
    pacers[0]._container.create_container()
    granted: list[float] = []
    lock = threading.Lock()

    def creates(pacer: BlobPacer) -> None:
        for _ in range(8):
            at = pacer.acquire("kv1", KeyKind())
            with lock:
                granted.append(at)

    threads = [threading.Thread(target=creates, args=(p,)) for p in pacers for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(granted) == 96, "every create was granted once"
    times = sorted(granted)
    limit = 20
    crowded = [(a, b) for a, b in zip(times, times[limit:], strict=False) if b - a < limits.window]
    assert crowded == [], f"{limit + 1} grants inside one window"
    space = limits.window / (limit * limits.headroom)
    assert min(b - a for a, b in itertools.pairwise(times)) >= CATCH_UP * space - 1e-6, "a burst"


def test_a_vault_of_another_subscription_is_not_held_back_by_a_full_one(stack) -> None:
    name = unique("budget").lower()
    pacer = BlobPacer(container(stack, name), Limits(window=5.0), {"kv1": "a", "kv2": "b"}, max_wait=0.0)
    pacer._container.create_container()
    pacer.acquire("kv1", KeyKind())
    with pytest.raises(Paced) as paced:  # the next create of kv1 waits its turn: no wait allowed here
        pacer.acquire("kv1", KeyKind())
    assert paced.value.reason == "vault_full" and 0 < paced.value.delay_seconds <= 5.0
    assert pacer.acquire("kv2", KeyKind()) > 0


def _full_budget(stack, container_name: str, vault: str = "kv1") -> None:
    """The vault's window spent just now, as other instances would have left it."""
    blob = container(stack, container_name)
    blob.create_container()
    now = time.time()
    state = Budget({vault: VaultState(grants=tuple((now, 1) for _ in range(19)))})
    blob.get_blob_client(BLOB_NAME).upload_blob(state.to_json().encode(), overwrite=True)


def test_a_renewal_without_a_turn_goes_back_to_the_queue_with_no_attempt_spent(stack) -> None:
    name = unique("paced")
    seed(stack, name, days_left=400, lifetime_days=500)
    locks = unique("paced-locks").lower()
    _full_budget(stack, locks)
    settings = {"CERTLC_LOCK_CONTAINER": locks, "CERTLC_PACING_WAIT_SECONDS": "0"}
    with functions_clock(HandClock(stack.now()), **settings):
        deliver(stack, RenewalRequest("kv1", name, "manual", force=True).to_json())
        paced = [r for r in audit(stack, name) if r["event"] == "retried"]
        assert [(r["reason"], r["attempt"]) for r in paced] == [("keyvault_budget", 1)], paced
        assert 0 < paced[0]["delay_seconds"] <= 12
        assert not any(r["event"] == "csr_created" for r in audit(stack, name)), "nothing was created unpaced"
        drain_until(stack, lambda: merged(stack, name) == 1, timeout=60, names=(name,))
    created = [r for r in audit(stack, name) if r["event"] == "csr_created"]
    assert [r["attempt"] for r in created] == [1], "the same attempt came back and renewed"
    assert len(versions(stack, name)) == 2 and no_pending(stack, name)


@pytest.mark.parametrize("retry_after", [2, None], ids=["with Retry-After", "without Retry-After"])
def test_a_429_on_create_pauses_the_vault_and_the_renewal_comes_back_once(stack, retry_after) -> None:
    """Key Vault answers the create 429 although the budget had room (another client uses the vault): the SDK does
    not try again on its own, the pause goes into the shared budget, and the same attempt renews after it."""
    name = unique("throttled")
    seed(stack, name, days_left=400, lifetime_days=500)
    locks = unique("throttled-locks").lower()
    create = f"/certificates/{name}/create"
    fault = {"status": 429, "method": "POST", "path": create, "count": 1}
    stack.control.add_fault(**fault, **({"retry_after": retry_after} if retry_after else {}))
    settings = {"CERTLC_LOCK_CONTAINER": locks}
    try:
        with functions_clock(HandClock(stack.now()), **settings):
            deliver(stack, RenewalRequest("kv1", name, "manual", force=True).to_json())
            budget = Budget.from_json(
                container(stack, locks).get_blob_client(BLOB_NAME).download_blob().readall().decode()
            )
            paused = budget.vaults["kv1"]
            assert paused.streak == 1 and paused.share == 0.9  # a lone 429 costs a tenth of the rate
            retried = [r for r in audit(stack, name) if r["event"] == "retried"]
            assert [(r["reason"], r["attempt"]) for r in retried] == [("keyvault_budget", 1)], retried
            drain_until(stack, lambda: merged(stack, name) == 1, timeout=60, names=(name,))
        hits = [f for f in stack.control.call("GET", "faults") if f.get("path") == create]
    finally:
        stack.control.clear_faults()
    assert [f["hits"] for f in hits] == [1], "the SDK did not send the throttled create again by itself"
    assert len(versions(stack, name)) == 2 and no_pending(stack, name)


def test_pacing_off_is_what_the_setting_says(stack) -> None:
    from renewal.pacing.settings import pacer_from_env
    from renewal.pacing.store import Unpaced

    assert isinstance(pacer_from_env({**os.environ, "CERTLC_PACING": "off"}, ["kv1"]), Unpaced)
    assert isinstance(pacer_from_env(stack.settings, ["kv1"]), BlobPacer)
