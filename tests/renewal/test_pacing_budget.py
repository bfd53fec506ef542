"""The shared create budget's decisions, as a table: when a create may go, and how long to wait when not."""

from __future__ import annotations

import itertools

import pytest

from renewal.pacing.budget import (
    CATCH_UP,
    Budget,
    Limits,
    VaultState,
    after_throttle,
    book,
    pruned,
    share_now,
    take,
    wait_for_room,
)
from renewal.pacing.limits import KeyKind, key_kind

LIMITS = Limits(per_vault=20, per_subscription=100, window=10.0, headroom=0.95)  # caps: 19 per vault, 95 together


def grants(count: int, at: float = 0.0, step: float = 0.0) -> tuple[tuple[float, int], ...]:
    return tuple((at + i * step, 1) for i in range(count))


def budget(**vaults: VaultState) -> Budget:
    return Budget(dict(vaults))


SPACE = 10.0 / 19  # one create's share of 95 % of the vault's limit
SUBSCRIPTION_SPACE = 10.0 / 95


@pytest.mark.parametrize(
    ("why", "state", "vault", "cost", "now", "peers", "granted", "reason", "wait"),
    [
        ("an empty budget grants", budget(), "kv1", 1, 100.0, {"kv1"}, True, "granted", 0.0),
        ("one create's share of the window after the last grant", budget(kv1=VaultState(grants(1, 100.0 - SPACE))),
         "kv1", 1, 100.0, {"kv1"}, True, "granted", 0.0),
        ("grants are spaced, never a burst", budget(kv1=VaultState(grants(1, 99.9))), "kv1", 1, 100.0, {"kv1"},
         False, "vault_full", round(99.9 + CATCH_UP * SPACE - 100.0, 6)),
        ("the rate holds over the grants of the window", budget(kv1=VaultState(grants(2, 99.0, 0.6))), "kv1", 1,
         100.0, {"kv1"}, False, "vault_full", round(99.0 + 2 * SPACE - 100.0, 6)),
        ("after a late grant the next catches up", budget(kv1=VaultState(((98.0, 1), (99.7, 1)))), "kv1", 1, 100.0,
         {"kv1"}, True, "granted", 0.0),
        ("an HSM create takes two shares of the window", budget(kv1=VaultState(((99.5, 2),))), "kv1", 2, 100.0,
         {"kv1"}, False, "vault_full", round(99.5 + 2 * CATCH_UP * SPACE - 100.0, 6)),
        ("grants older than the window do not count", budget(kv1=VaultState(grants(20, 89.0))), "kv1", 1, 100.0,
         {"kv1"}, True, "granted", 0.0),
        ("a paused vault waits out its pause", budget(kv1=VaultState(paused_until=103.0)), "kv1", 1, 100.0, {"kv1"},
         False, "vault_paused", 3.0),
        ("the subscription spaces its vaults' grants", budget(kv2=VaultState(grants(1, 99.99))), "kv1", 1, 100.0,
         {"kv1", "kv2"}, False, "subscription_full", round(99.99 + CATCH_UP * SUBSCRIPTION_SPACE - 100.0, 6)),
        ("the subscription's ceiling binds across vaults",
         budget(**{f"kv{i}": VaultState(grants(20, 91.0)) for i in range(1, 6)}), "kv6", 1, 100.0,
         {f"kv{i}" for i in range(1, 7)}, False, "subscription_full",
         round(91.0 + 100 * SUBSCRIPTION_SPACE - 100.0, 6)),
        ("vaults of another subscription do not count",
         budget(**{f"kv{i}": VaultState(grants(20, 91.0)) for i in range(1, 6)}), "kv6", 1, 100.0, {"kv6"}, True,
         "granted", 0.0),
        ("after a 429 the vault's share spaces grants further apart", budget(kv1=VaultState(grants(1, 99.8),
         throttled_at=99.0, share=0.5)), "kv1", 1, 100.0, {"kv1"}, False, "vault_full",
         round(99.8 + CATCH_UP * 10.0 / (19 * 0.51) - 100.0, 6)),
    ],
)  # fmt: skip
def test_take(why, state, vault, cost, now, peers, granted, reason, wait) -> None:
    grant = take(state, vault, cost, now, LIMITS, peers)
    assert (grant.granted, grant.reason, round(grant.wait_seconds, 6)) == (granted, reason, wait), why
    if granted:
        assert grant.budget.vaults[vault].grants[-1] == (now, cost)


def test_key_vault_own_limit_over_the_window_is_a_hard_cap_whatever_the_pace() -> None:
    loose = Limits(headroom=2.0)  # a pace above the limit: only the cap can hold it
    full = budget(kv1=VaultState(grants(20, 95.0)))
    grant = take(full, "kv1", 1, 100.0, loose, {"kv1"})
    assert (grant.granted, grant.reason, grant.wait_seconds) == (False, "vault_full", 5.0)


def test_grants_taken_as_fast_as_allowed_come_at_95_percent_of_the_limit_and_never_past_it() -> None:
    state, now, times = Budget(), 0.0, []
    while now < 60.0:
        grant = take(state, "kv1", 1, now, LIMITS, {"kv1"})
        if grant.granted:
            state, times = grant.budget, [*times, now]
            continue
        now += grant.wait_seconds
    per_window = [sum(start <= t < start + 10.0 for t in times) for start in (0.0, 10.0, 20.0, 30.0, 40.0)]
    assert set(per_window) <= {19, 20} and sum(per_window) / len(per_window) <= 19.2
    assert all(b - a >= CATCH_UP * SPACE - 1e-9 for a, b in itertools.pairwise(times))


def test_a_lone_429_pauses_for_what_key_vault_asked_and_costs_a_tenth_of_the_rate() -> None:
    paused = after_throttle(Budget(), "kv1", 100.0, 7, LIMITS).vaults["kv1"]
    assert (paused.paused_until, paused.streak, paused.share) == (107.0, 1, 0.9)
    again = after_throttle(Budget({"kv1": paused}), "kv1", 101.0, 7, LIMITS).vaults["kv1"]
    assert (again.streak, round(again.share, 6)) == (2, round(min(1.0, 0.9 + 0.01) * 0.5, 6))  # a streak halves


def test_a_429_without_retry_after_backs_off_exponentially_and_stops_doubling() -> None:
    state, pauses = Budget(), []
    for i in range(12):
        now = 100.0 + i
        state = after_throttle(state, "kv1", now, None, LIMITS)
        pauses.append(round(state.vaults["kv1"].paused_until - now, 6))
    assert pauses[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(pauses) == 60.0  # six windows
    assert state.vaults["kv1"].share == 0.25  # cut, never below a quarter


def test_the_share_recovers_a_tenth_per_window_without_a_429() -> None:
    state = VaultState(throttled_at=0.0, share=0.5)
    assert [round(share_now(state, later, 10.0), 6) for later in (1.0, 20.0, 50.0)] == [0.51, 0.7, 1.0]


def test_bookings_spread_requests_sent_back_at_the_rate_key_vault_allows() -> None:
    state, turns = Budget(), []
    for _ in range(40):
        state, delay = book(state, "kv1", "sub", 1, 105.0, 100.0, LIMITS)
        turns.append(delay)
    assert turns[0] == 5.0
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(turns)}
    assert gaps == {round(10.0 / 19, 6)}  # one create's share of the vault's window


def test_bookings_of_vaults_in_one_subscription_share_its_ceiling() -> None:
    state, last = Budget(), 0.0
    for i in range(600):
        state, last = book(state, f"kv{i % 6 + 1}", "sub", 1, 0.0, 0.0, LIMITS)
    # 600 turns at 95 per window together (each vault alone would allow 6 x 19 = 114)
    assert 10.0 * 599 / 95 - 0.01 <= last <= 10.0 * 599 / 95 + 0.6


def test_the_budget_round_trips_and_forgets_what_left_the_window() -> None:
    state = take(Budget(), "kv1", 1, 0.0, LIMITS, {"kv1"}).budget
    state, _ = book(state, "kv2", "sub", 1, 5.0, 0.0, LIMITS)
    assert Budget.from_json(state.to_json()) == state
    assert pruned(state, 30.0, LIMITS.window) == Budget()
    assert Budget.from_json("") == Budget() and Budget.from_json('{"schema": "other"}') == Budget()
    assert Budget.from_json("not json") == Budget()


def test_wait_for_room_when_the_cost_needs_several_grants_to_leave() -> None:
    assert wait_for_room([(1.0, 1), (2.0, 1), (3.0, 1)], 2, 3, 5.0, 10.0) == 7.0


class _Policy:
    def __init__(self, key_type: str | None, key_size: int | None = None) -> None:
        self.key_type, self.key_size = key_type, key_size


@pytest.mark.parametrize(
    ("key_type", "size", "kind", "create_cost", "other_cost"),
    [
        (None, None, KeyKind(False, 2048), 1, 1),
        ("RSA", 2048, KeyKind(False, 2048), 1, 1),
        ("RSA", 3072, KeyKind(False, 3072), 1, 4),
        ("RSA", 4096, KeyKind(False, 4096), 1, 8),
        ("RSA-HSM", 2048, KeyKind(True, 2048), 2, 2),
        ("RSA-HSM", 4096, KeyKind(True, 4096), 2, 16),
        ("EC", None, KeyKind(False, None), 1, 1),
        ("EC-HSM", None, KeyKind(True, None), 2, 2),
    ],
)
def test_key_vault_weighs_each_key_kind(key_type, size, kind, create_cost, other_cost) -> None:
    found = key_kind(_Policy(key_type, size))
    assert (found, found.create_cost, found.other_cost) == (kind, create_cost, other_cost)
