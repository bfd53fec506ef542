"""NCRONTAB schedules, as the Functions timer trigger reads them.

Six fields: ``{second} {minute} {hour} {day} {month} {day-of-week}``, each ``*``, a value, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those. Months and days of the week also take
their English three-letter names (``Jan``, ``Mon``); Sunday is 0. As in NCrontab (and unlike Vixie
cron) a time matches only when both the day of the month and the day of the week match.

Why not croniter (``second_at_beginning=True, day_or=False``): it finds the same next times for the host's own
cases, but it accepts what NCRONTAB, and so Azure, refuses: five fields, day-of-week 7, a range that runs
backwards (``30-10`` wraps); and its messages name neither the field nor the rule (``[...] is not acceptable, out
of range``). An adapter would keep all of this module's checks, and a schedule Azure refuses must fail here too,
saying which field is wrong.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, time, timedelta

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _WEEKDAYS),
)
_SEARCH_DAYS = 366 * 5  # Feb 29 on a given weekday can take years to come round


class ScheduleError(ValueError):
    """A schedule string that is not a valid six-field NCRONTAB expression."""


def _value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    number = names.get(text.lower()) if names else None
    if number is None:
        if not text.isdigit():
            raise ScheduleError(f"{field} field: {text!r} is not a number")
        number = int(text)
    if not low <= number <= high:
        raise ScheduleError(f"{field} field: {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{field} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start, end = _value(first, field, low, high, names), _value(last, field, low, high, names)
            if start > end:
                raise ScheduleError(f"{field} field: range {span!r} runs backwards")
        else:
            start = _value(span, field, low, high, names)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; ``next_occurrence`` gives the first matching second after a time."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    def _day_matches(self, day: datetime) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python: Monday=0; NCRONTAB: Sunday=0
        return day.month in self.months and day.day in self.days and weekday in self.weekdays

    def _first_time(self, not_before: time) -> time | None:
        for hour in sorted(h for h in self.hours if h >= not_before.hour):
            for minute in sorted(self.minutes):
                for second in sorted(self.seconds):
                    candidate = time(hour, minute, second)
                    if candidate >= not_before:
                        return candidate
        return None

    def next_occurrence(self, after: datetime) -> datetime:
        """The first matching time strictly after ``after`` (same time zone as ``after``)."""
        start = after.replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        not_before = start.time().replace(tzinfo=None)
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                found = self._first_time(not_before)
                if found is not None:
                    return day.replace(hour=found.hour, minute=found.minute, second=found.second)
            day += timedelta(days=1)
            not_before = time(0, 0, 0)
        raise ScheduleError(f"schedule {self.expression!r} never occurs")


def parse(expression: str) -> Schedule:
    """Parse a six-field NCRONTAB expression; errors name the field that is wrong."""
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise ScheduleError(
            f"schedule {expression!r} has {len(parts)} fields; NCRONTAB needs 6: "
            "{second} {minute} {hour} {day} {month} {day-of-week}, e.g. '0 0 * * * *' for hourly"
        )
    try:
        sets = [_parse_field(text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
    except ScheduleError as exc:
        raise ScheduleError(f"schedule {expression!r}: {exc}") from None
    return Schedule(expression, *sets)
