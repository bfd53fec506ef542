"""The sweep-cost benchmark's arithmetic: the prediction from a mix of certificates, and the 10 s peak.

The benchmark itself (seeding, the sweep on the local stack, the request log) is run by ``bench/sweep_cost.py``;
these check, on hand-made inputs, the two computations its bars rest on.
"""

from __future__ import annotations

import pytest

from bench import sweep_cost
from bench.sweep_cost import GET, GET_VERSION, LIST, PENDING, TAG_WRITE, VERSIONS, peak_in_window, plan_mix, predict

MIX = {
    "kv1": {
        "healthy": 40,  # 51 certificates: 3 list pages
        "unmanaged_healthy": 3,
        "canary_waiting": 1,
        "due": 2,
        "canary_due": 1,
        "notice_self_issued": 1,
        "notice_opted_out": 1,
        "unfinished_record": 1,
        "orphan_pending": 1,
    },
    "kv2": {"healthy": 25, "unmanaged_in_window": 1},  # 26 certificates: 2 pages
}


def test_the_prediction_counts_list_pages_reads_pending_reads_and_tag_writes_per_vault() -> None:
    predicted = predict(MIX)

    assert predicted["by_vault"]["kv1"] == {
        "sweep": {
            LIST: 3,
            GET: 2 + 1 + 1 + 1 + 1 + 1,  # due, canary due, two in the notice window, the record, the orphan
            TAG_WRITE: 2,  # the two warned today
            PENDING: 2,  # the record's version and the orphan's placeholder
            VERSIONS: 1,  # the orphan: its last good version, from the version list...
            GET_VERSION: 1,  # ...and read
        },
        "target_check": {},  # the sweep's listing, not its own
    }
    assert predicted["by_vault"]["kv2"] == {"sweep": {LIST: 2, GET: 1}, "target_check": {}}
    assert predicted["sweep"] == {LIST: 5, GET: 8, GET_VERSION: 1, TAG_WRITE: 2, PENDING: 2, VERSIONS: 1}
    assert predicted["target_check"] == {}
    assert predicted["looked_at"] == 8


def test_a_later_sweep_the_same_day_writes_no_tags_and_leaves_the_opted_out_one_it_told() -> None:
    first, later = predict(MIX), predict(MIX, first_of_day=False)

    assert TAG_WRITE not in later["sweep"]
    read_once = {k: v - (k == GET) for k, v in first["sweep"].items() if k != TAG_WRITE}  # the opted-out one told
    assert read_once == later["sweep"]


def test_list_pages_round_up_to_whole_pages_of_25() -> None:
    for count, pages in ((1, 1), (25, 1), (26, 2), (2500, 100), (2501, 101)):
        assert predict({"kv": {"healthy": count}})["sweep"] == {LIST: pages}, count


def test_the_planned_mix_adds_up_and_deals_every_kind_over_the_vaults() -> None:
    seeds = plan_mix(2000, ["kv1", "kv2", "kv3", "kv4"])
    mix = sweep_cost.mix_of(seeds)

    assert len(seeds) == len({(s.vault, s.name) for s in seeds}) == 2000
    assert sum(sum(kinds.values()) for kinds in mix.values()) == 2000
    assert {kinds["canary_due"] for kinds in mix.values()} == {1}
    assert set(sweep_cost.COST) == {kind for kinds in mix.values() for kind in kinds}
    by_kind = {s.kind: [] for s in seeds}
    for s in seeds:
        by_kind[s.kind].append(s.days_left)
    window = sweep_cost.LIFETIME_DAYS / 3
    assert min(by_kind["healthy"]) > window and min(by_kind["unmanaged_healthy"]) > window
    assert min(by_kind["due"]) > 30 and max(by_kind["due"]) < window
    assert max(by_kind["notice_self_issued"]) < 30 and max(by_kind["notice_opted_out"]) < 30


@pytest.mark.parametrize(
    ("times", "peak"),
    [
        ([], 0),
        ([5.0], 1),
        ([0.0, 1.0, 2.0], 3),
        ([0.0, 10.0, 20.0], 1),  # a window is [t, t + 10): the call at 10 s is in the next one
        ([0.0, 9.999, 10.0, 20.0], 2),
        ([0.0, 9.999, 10.0, 19.998], 3),  # [9.999, 19.999) holds three
        ([3.0, 0.0, 2.0, 1.0, 30.0, 31.0], 4),  # unordered input
        ([0.0, 0.1, 0.2, 9.0, 10.05, 10.1, 10.2, 10.3], 5),  # the busiest window starts at 0.1, not at a round 10 s
    ],
)
def test_the_peak_slides_over_the_calls_not_fixed_windows(times: list[float], peak: int) -> None:
    assert peak_in_window(times) == peak


def test_the_peak_window_length_is_a_parameter() -> None:
    assert peak_in_window([0.0, 0.5, 1.0, 1.5], window=1.0) == 2
