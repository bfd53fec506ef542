"""``certlc doctor``'s sweep heartbeat line against real storage (Azurite): when the sweep last ran, late after two
intervals of ``CERTLC_SWEEP_SCHEDULE`` with what to check, and nothing claimed before a first sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from renewal.heartbeat import Heartbeat, write_heartbeat

pytestmark = pytest.mark.timeout(120)


def sweep_at(deployment, at: datetime) -> Heartbeat:
    beat = Heartbeat(
        at=at.replace(microsecond=0), host="fn-a1", queued=3, taken_over=0, in_flight=1, warned=2, errors=0
    )
    assert write_heartbeat(deployment.env, beat, deadline=30)  # the blob (the fixture's Logs target takes the row)
    return beat


def test_a_recent_sweep_is_shown_with_its_time_host_and_counts(deployment, doctor):
    beat = sweep_at(deployment, datetime.now(UTC) - timedelta(minutes=20))

    run = doctor(deployment.env)

    line = run.line("sweep heartbeat")
    stamp = beat.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert line.startswith("ok    ") and f"last sweep {stamp} on fn-a1" in line, run.out
    assert "(3 queued, 0 taken over, 1 in flight, 2 warned, 0 errors)" in line and "20 min ago" in line
    assert run.code == 0, run.out


def test_a_sweep_older_than_two_intervals_is_late_and_says_what_to_check(deployment, doctor):
    sweep_at(deployment, datetime.now(UTC) - timedelta(hours=3))

    run = doctor(deployment.env)

    line = run.line("sweep heartbeat")
    assert line.startswith("FAIL") and "late, 3 h ago, the schedule runs every 60 min" in line, run.out
    assert "fix: check that the Function App runs and its sweep function is indexed (certlc doctor --app)" in line
    assert sum(line.startswith("FAIL") for line in run.lines) == 1 and run.code == 1


def test_the_interval_follows_the_schedule_setting(deployment, doctor):
    sweep_at(deployment, datetime.now(UTC) - timedelta(hours=3))

    run = doctor(deployment.env | {"CERTLC_SWEEP_SCHEDULE": "0 0 */4 * * *"})  # every four hours: not late yet

    assert run.line("sweep heartbeat").startswith("ok    "), run.out


def test_before_the_first_sweep_of_a_new_deployment_nothing_is_late(deployment, doctor):
    run = doctor(deployment.env)

    assert run.line("sweep heartbeat") == "ok    sweep heartbeat  no sweep has run yet; one is due every 60 min"


def test_a_schedule_setting_the_host_cannot_read_fails_the_line(deployment, doctor):
    run = doctor(deployment.env | {"CERTLC_SWEEP_SCHEDULE": "every hour"})

    line = run.line("sweep heartbeat")
    assert line.startswith("FAIL") and "CERTLC_SWEEP_SCHEDULE 'every hour'" in line, run.out
