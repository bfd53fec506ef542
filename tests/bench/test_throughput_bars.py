"""The throughput benchmark's bars, computed from hand-made request-log entries and emulator counts (no stack)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bench import throughput

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def entry(seconds: float, *, vault: str = "kv1", name: str = "tp-00001", status: int = 200, path: str = "") -> dict:
    return {
        "method": "POST",
        "path": path or f"/certificates/{name}/create",
        "query": {},
        "vault": vault,
        "status": status,
        "time": (T0 + dt.timedelta(seconds=seconds)).isoformat(),
    }


def other(seconds: float, status: int = 200) -> dict[str, Any]:
    return {**entry(seconds, status=status), "method": "GET", "path": "/certificates/tp-00001"}


def test_binding_limit_is_the_lower_of_the_vaults_and_the_subscription_and_halves_for_hsm() -> None:
    assert throughput.binding_limit(1) == 20
    assert throughput.binding_limit(2) == 40
    assert throughput.binding_limit(5) == 100
    assert throughput.binding_limit(6) == 100  # the subscription's ceiling binds
    assert throughput.binding_limit(2, hsm=True) == 20
    assert throughput.binding_limit(6, hsm=True) == 50
    assert throughput.binding_scope(2) == "vault"
    assert throughput.binding_scope(6) == "subscription"


def test_create_times_keeps_granted_creates_per_vault_only() -> None:
    entries = [
        entry(0.0),
        entry(1.0, status=429),  # throttled: not a create Key Vault made
        entry(2.0, vault="kv2"),
        other(3.0),
        entry(4.0, path="/certificates/tp-00001/pending/merge"),
    ]
    assert throughput.create_times(entries) == {"kv1": [T0.timestamp()], "kv2": [T0.timestamp() + 2.0]}


def test_steady_rate_leaves_the_first_and_the_last_window_out() -> None:
    window = 10.0
    burst = [0.0] * 20  # the empty budget's burst at the start
    steady = [10.0 + i * 0.5 for i in range(40)]  # 2 a second for two whole windows: 20 per window
    tail = [30.0] * 5  # the last window, cut short by the last create
    rate = throughput.steady_rate(burst + steady + tail, window)
    assert rate == {"windows": 2, "creates": 40, "creates_per_window": 20.0, "creates_per_second": 2.0}
    uneven = throughput.steady_rate([0.0, 12.0, 15.0, 25.0, 31.0], window)  # windows of 1, 2, 1, 1
    assert uneven == {"windows": 2, "creates": 3, "creates_per_window": 1.5, "creates_per_second": 0.15}


def test_steady_rate_needs_a_whole_window_between_the_first_and_the_last() -> None:
    assert throughput.steady_rate([], 10.0) is None
    assert throughput.steady_rate([0.0, 5.0, 15.0], 10.0) is None  # a first and a last window only
    assert throughput.steady_rate([0.0, 25.0], 10.0) == {
        "windows": 1,
        "creates": 0,
        "creates_per_window": 0.0,
        "creates_per_second": 0.0,
    }


def test_per_window_and_the_sliding_maximum() -> None:
    times = [0.0, 1.0, 9.9, 10.0, 15.0, 25.0]
    assert throughput.per_window(times, 10.0) == [3, 2, 1]
    # as the emulator counts, a window is (t - 10, t]: at 10.0 the create at 0.0 has left it
    assert throughput.max_in_any_window(times, 10.0) == 3
    assert throughput.max_in_any_window([*times, 10.5], 10.0) == 4  # (0.5, 10.5]: 1.0, 9.9, 10.0, 10.5
    assert throughput.max_in_any_window([], 10.0) == 0


def test_share_429_from_the_request_log_and_the_emulator_counts() -> None:
    entries = [entry(0.0), entry(1.0, status=429), other(2.0), other(3.0, status=401), other(4.0)]
    calls, throttled = throughput.log_calls(entries)
    assert (calls, throttled) == (4, 1)  # the 401 bearer challenge is no call
    assert throughput.share_429(calls, throttled) == 0.25
    assert throughput.share_429(0, 0) == 0.0
    counts = {
        "granted": {"create": {"requests": 180, "weight": 360}, "other": {"requests": 818, "weight": 818}},
        "throttled": {"create": 2, "other": 0},
        "throttled_by": {"vault": 2, "subscription": 0},
    }
    assert throughput.stats_calls({"subscriptions": {"sub-bench": counts}}) == (1000, 2, 360)
    assert throughput.share_429(1000, 2) == 0.002


def test_bars_are_met_only_by_a_clean_run_near_the_limit() -> None:
    good = throughput.bars(throttled=True, share=0.01, fraction=0.9, failures=0, versions={2: 10}, certs=10)
    assert all(bar["met"] for bar in good.values())
    assert set(good) == {"share_429", "fraction_of_limit", "failures", "one_new_version_each"}
    for change, missed in (
        ({"share": 0.011}, "share_429"),
        ({"fraction": 0.89}, "fraction_of_limit"),
        ({"fraction": None}, "fraction_of_limit"),
        ({"failures": 1}, "failures"),
        ({"versions": {2: 9, 3: 1}}, "one_new_version_each"),
        ({"versions": {2: 9}}, "one_new_version_each"),
    ):
        args: dict[str, Any] = {"share": 0.0, "fraction": 0.95, "failures": 0, "versions": {2: 10}}
        found = throughput.bars(throttled=True, certs=10, **(args | change))
        assert [name for name, bar in found.items() if not bar["met"]] == [missed]


def test_without_throttling_only_failures_and_versions_are_bars() -> None:
    found = throughput.bars(throttled=False, share=0.5, fraction=None, failures=0, versions={2: 3}, certs=3)
    assert set(found) == {"failures", "one_new_version_each"}
    assert all(bar["met"] for bar in found.values())
