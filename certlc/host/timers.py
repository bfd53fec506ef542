"""Timer triggers: NCRONTAB schedules in UTC, ``runOnStartup``, never two runs of one timer at once."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.functions.meta import Datum

from certlc.host import ncrontab
from certlc.host.bindings import BindingError, HostedFunction

log = logging.getLogger("certlc.host")

PAST_DUE_AFTER = timedelta(seconds=1)  # an occurrence fired later than this is reported past due

Invoke = Callable[[HostedFunction, Datum, dict[str, Datum]], None]
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TimerRunner:
    """Fires one timer-triggered function on its schedule, or on demand with ``fire``."""

    def __init__(self, function: HostedFunction, invoke: Invoke, clock: Clock = _utcnow) -> None:
        try:
            self.schedule = ncrontab.parse(function.trigger["schedule"])
        except ncrontab.ScheduleError as exc:
            raise BindingError(f"function {function.name!r}: {exc}") from None
        self.function = function
        self.run_on_startup = bool(function.trigger.get("runOnStartup", False))
        self._invoke = invoke
        self._clock = clock
        self._lock = threading.Lock()
        self._last: datetime | None = None

    def fire(self, past_due: bool = False) -> None:
        """Invoke the function now (after any run in progress); its exception propagates."""
        with self._lock:
            now = self._clock()
            status = {
                "Last": (self._last or now).isoformat(),
                "Next": self.schedule.next_occurrence(now).isoformat(),
                "LastUpdated": now.isoformat(),
            }
            self._last = now
            payload = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due}
            self._invoke(self.function, Datum(type="json", value=json.dumps(payload)), {})

    def _fire_logged(self, past_due: bool) -> None:
        try:
            self.fire(past_due=past_due)
        except Exception as exc:  # already logged by the invoker; the schedule goes on
            log.debug("timer %r: %s", self.function.name, exc)

    def run(self, stop: threading.Event) -> None:
        """Fire on every occurrence until ``stop`` is set; missed occurrences are skipped, not queued."""
        if self.run_on_startup:
            self._fire_logged(past_due=False)
        due = self.schedule.next_occurrence(self._clock())
        while not stop.wait(max(0.0, (due - self._clock()).total_seconds())):
            self._fire_logged(past_due=self._clock() - due > PAST_DUE_AFTER)
            due = self.schedule.next_occurrence(max(self._clock(), due))
