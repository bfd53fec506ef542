"""The sweep's heartbeat: when it is late (a table of cases), the schedule's interval, the record, its row, and
writing that never fails the sweep and never outlasts its deadline."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from localazure.emulators.logs.dcr import check_rows, load_streams

from certlc.doctor.heartbeat import ScheduleUnusable, judge_sweep, schedule_interval, sweep_interval, sweep_seen
from ingestion.heartbeat import COLUMNS, STREAM_DEFAULT, heartbeat_row
from renewal import heartbeat as module
from renewal.heartbeat import Heartbeat, heartbeat_of, heartbeat_verdict, write_heartbeat
from renewal.sweep import SweepReport

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MONITORING = Path(__file__).resolve().parents[2] / "infra" / "monitoring.json"


def beat(minutes_ago: float, **changes: object) -> Heartbeat:
    fields = {"host": "fn-1", "queued": 2, "taken_over": 1, "in_flight": 3, "warned": 0, "errors": 1} | changes
    return Heartbeat(at=NOW - timedelta(minutes=minutes_ago), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("last", "since", "interval", "state", "ok"),
    [
        (beat(5), None, HOUR, "ok", True),
        (beat(119), None, HOUR, "ok", True),  # one missed run: a restart, a slow start
        (beat(120), None, HOUR, "ok", True),  # exactly two intervals is not late yet
        (beat(121), None, HOUR, "late", False),
        (beat(60 * 30), None, HOUR, "late", False),
        (beat(60 * 30), None, timedelta(hours=14), "late", False),  # office hours: the night gap counts twice
        (beat(60 * 27), None, timedelta(hours=14), "ok", True),
        (beat(-3), None, HOUR, "ok", True),  # a writer's clock a little ahead is not late
        (None, None, HOUR, "waiting", True),  # nothing says how long it has been
        (None, NOW - timedelta(minutes=90), HOUR, "waiting", True),  # a new deployment, first sweep not due twice
        (None, NOW - timedelta(minutes=121), HOUR, "never", False),
        (None, NOW - timedelta(days=9), HOUR, "never", False),
    ],
)
def test_heartbeat_verdict(last, since, interval, state, ok):
    verdict = heartbeat_verdict(last, NOW, interval, since)
    assert (verdict.state, verdict.ok) == (state, ok)
    assert bool(verdict.fix) == (not ok)  # only a verdict that is not ok says what to check
    if not ok:
        assert "CERTLC_SWEEP_SCHEDULE" in verdict.fix and "certlc doctor --app" in verdict.fix
    if last is not None:
        assert "on fn-1 (2 queued, 1 taken over, 3 in flight, 0 warned, 1 errors)" in verdict.message
        assert last.at.strftime("%Y-%m-%dT%H:%M") in verdict.message


@pytest.mark.parametrize(
    ("schedule", "interval"),
    [
        ("0 0 * * * *", HOUR),  # the template's sweepSchedule
        ("0 30 * * * *", HOUR),  # its ingestSchedule
        ("0 */5 * * * *", timedelta(minutes=5)),
        ("0 0 8-18 * * *", timedelta(hours=14)),  # office hours: the longest gap is the night
        ("0 0 3 * * *", timedelta(days=1)),
        ("0 0 3 * * 1", timedelta(days=7)),  # weekly: further out than a day, still two runs
    ],
)
def test_schedule_interval_is_the_longest_gap(schedule, interval):
    assert schedule_interval(schedule, NOW) == interval


@pytest.mark.parametrize(("env", "words"), [({}, "is not set"), ({"CERTLC_SWEEP_SCHEDULE": "hourly"}, "'hourly'")])
def test_a_sweep_schedule_that_cannot_be_read_is_named(env, words):
    with pytest.raises(ScheduleUnusable, match=words):
        sweep_interval(env, NOW)


def test_status_and_doctor_show_a_schedule_they_cannot_read_as_unknown_and_failed():
    seen = sweep_seen({}, 1)
    assert seen.state == "unknown" and "CERTLC_SWEEP_SCHEDULE is not set" in seen.message
    result = judge_sweep(seen)
    assert (result.name, result.ok) == ("sweep heartbeat", False) and result.fix


def test_the_record_round_trips_and_a_foreign_blob_is_none():
    last = beat(5, past_due=True)
    assert Heartbeat.from_json(last.to_json()) == last
    assert '"at": "2026-03-02T11:55:00Z"' in last.to_json()
    for text in ("", "{}", '{"schema": "other"}', last.to_json().replace('"fn-1"', '"fn-1", "extra": 1'), "[1]"):
        assert Heartbeat.from_json(text) is None, text


def test_the_record_counts_a_sweep_report():
    report = SweepReport(enqueued=["a", "b"], taken_over=["c"], in_flight=[], warned=["d"], errors={"e": "boom"})
    assert heartbeat_of(report, NOW, past_due=True, host="h") == Heartbeat(NOW, "h", 2, 1, 0, 1, 1, True)


def test_the_row_has_the_declared_columns_in_order_and_the_stream_accepts_it():
    row = heartbeat_row(beat(0, past_due=True))
    assert list(row) == [name for name, _, _ in COLUMNS]
    assert row["TimeGenerated"] == "2026-03-02T12:00:00Z" and row["PastDue"] is True
    check_rows([row], load_streams(MONITORING)[STREAM_DEFAULT])  # the Logs emulator's check of the DCR's types


def test_writing_to_storage_nobody_answers_fails_quietly_and_in_time(caplog):
    env = {
        "CertlcStorage": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=YQ==;BlobEndpoint=http://127.0.0.1:9/a"
    }
    started = time.monotonic()
    assert write_heartbeat(env, beat(0), deadline=20) is False
    assert time.monotonic() - started < 20
    assert "sweep heartbeat blob not written" in caplog.text


def test_a_heartbeat_that_hangs_is_left_behind_at_the_deadline(monkeypatch, caplog):
    monkeypatch.setattr(module, "_write_blob", lambda env, heartbeat: time.sleep(5) or True)
    started = time.monotonic()
    assert write_heartbeat({}, beat(0), deadline=0.3) is False
    assert time.monotonic() - started < 2
    assert "sweep heartbeat not written within 0 s" in caplog.text


def test_without_a_logs_target_only_the_blob_is_written(monkeypatch):
    written = []
    monkeypatch.setattr(module, "_write_blob", lambda env, heartbeat: written.append(heartbeat) or True)
    assert write_heartbeat({}, beat(0)) is True and written == [beat(0)]
