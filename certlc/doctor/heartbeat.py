"""When the sweep last ran, for ``certlc doctor`` (one line) and ``certlc status`` (one line after the table).

gather: the heartbeat blob the sweep writes in the renewal lock's container (``renewal.heartbeat``), the container's
own age, ``CERTLC_SWEEP_SCHEDULE`` and the clock the functions read. decide: ``renewal.heartbeat.heartbeat_verdict``
with the schedule's interval (``schedule_interval``): late after two intervals without a run. Read-only, so no
Log Analytics is needed: the heartbeat alert watches the same runs there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from certlc.doctor.result import CheckResult, failed, passed

CHECK_NAME = "sweep heartbeat"
MAX_OCCURRENCES = 2000  # enough for a day of a schedule that runs every minute
UNREADABLE_FIX = "fix what this names (the lock container's line says the same of its storage), then run certlc doctor"


class ScheduleUnusable(ValueError):
    """``CERTLC_SWEEP_SCHEDULE`` is missing or not an NCRONTAB schedule; the message says what to set."""


def schedule_interval(expression: str, after: datetime) -> timedelta:
    """The longest gap between two runs of an NCRONTAB schedule over the day after ``after`` (at least two runs):
    a schedule that runs only in office hours is late only after two of its longest gaps."""
    from certlc.host import ncrontab

    try:
        schedule = ncrontab.parse(expression)
        runs = [schedule.next_occurrence(after)]
        while len(runs) < MAX_OCCURRENCES and (len(runs) < 2 or runs[-1] <= after + timedelta(days=1)):
            runs.append(schedule.next_occurrence(runs[-1]))
    except ncrontab.ScheduleError as exc:
        raise ScheduleUnusable(f"CERTLC_SWEEP_SCHEDULE {expression!r}: {exc}") from exc
    return max(later - earlier for earlier, later in pairwise(runs))


def sweep_interval(env: Mapping[str, str], now: datetime) -> timedelta:
    expression = env.get("CERTLC_SWEEP_SCHEDULE", "").strip()
    if not expression:
        raise ScheduleUnusable(
            "CERTLC_SWEEP_SCHEDULE is not set, so the sweep timer is not indexed: set it (hourly: 0 0 * * * *) "
            "as infra/main.json does"
        )
    return schedule_interval(expression, now)


@dataclass(frozen=True)
class SweepSeen:
    """What ``certlc status`` shows: the verdict's state, what was seen and what to check."""

    state: str
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"sweep: {self.message}"
        return text + (f"\n  check: {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "message": self.message, "fix": self.fix}


def sweep_seen(env: Mapping[str, str], timeout: float) -> SweepSeen:
    """The last sweep as the verdict sees it; a store or a setting that cannot say is state ``unknown``."""
    from certlc.doctor.locks import missing_blob_endpoint
    from renewal.clock import clock_from_env
    from renewal.errors import ConfigError
    from renewal.heartbeat import HeartbeatUnavailable, heartbeat_verdict, read_heartbeat

    problem = missing_blob_endpoint(env)  # the SDK would guess a public endpoint: not asked at all
    if problem:
        return SweepSeen("unknown", f"cannot read the sweep heartbeat: {problem}", UNREADABLE_FIX)
    try:
        now = clock_from_env(env)()
        interval = sweep_interval(env, now)
        last, since = read_heartbeat(env, timeout)
    except (HeartbeatUnavailable, ScheduleUnusable, ConfigError, OSError) as exc:  # OSError: the emulator's clock
        return SweepSeen("unknown", str(exc), UNREADABLE_FIX)
    verdict = heartbeat_verdict(last, now, interval, since)
    return SweepSeen(verdict.state, verdict.message, verdict.fix)


def judge_sweep(seen: SweepSeen, target: str = "") -> CheckResult:
    if seen.state in ("ok", "waiting"):
        return passed(CHECK_NAME, seen.message, target)
    return failed(CHECK_NAME, seen.message, seen.fix, target)


def check_heartbeat(env: Mapping[str, str], timeout: float) -> CheckResult:
    from renewal.heartbeat import BLOB_NAME

    return judge_sweep(sweep_seen(env, timeout), BLOB_NAME)
