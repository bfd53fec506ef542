from datetime import UTC, datetime

import pytest

from certlc.host import ncrontab


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 * * * *", at(2024, 5, 1, 10, 0, 0), at(2024, 5, 1, 11, 0, 0)),  # hourly, strictly after
        ("0 0 * * * *", at(2024, 5, 1, 10, 59, 59, 999), at(2024, 5, 1, 11, 0, 0)),
        ("*/15 * * * * *", at(2024, 5, 1, 10, 0, 1), at(2024, 5, 1, 10, 0, 15)),
        ("0 */5 * * * *", at(2024, 5, 1, 23, 58, 0), at(2024, 5, 2, 0, 0, 0)),  # crosses midnight
        ("0 30 9 * * 1-5", at(2024, 5, 3, 10, 0, 0), at(2024, 5, 6, 9, 30, 0)),  # Friday after 9:30 → Monday
        ("0 30 9 * * Mon-Fri", at(2024, 5, 3, 10, 0, 0), at(2024, 5, 6, 9, 30, 0)),
        ("0 0 0 1 Jan,Jul *", at(2024, 2, 10, 0, 0, 0), at(2024, 7, 1, 0, 0, 0)),
        ("0 0 12 29 2 *", at(2023, 3, 1, 0, 0, 0), at(2024, 2, 29, 12, 0, 0)),  # leap day
        ("5,10,40-42 0 0 * * *", at(2024, 1, 1, 0, 0, 10), at(2024, 1, 1, 0, 0, 40)),
        ("10/20 0 0 * * *", at(2024, 1, 1, 0, 0, 11), at(2024, 1, 1, 0, 0, 30)),  # start/step runs to the end
        ("0 0 0 13 * 5", at(2024, 1, 1, 0, 0, 0), at(2024, 9, 13, 0, 0, 0)),  # Friday 13th: both must match
    ],
)
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert ncrontab.parse(expression).next_occurrence(after) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 * * *", "has 5 fields"),
        ("60 * * * * *", "second field: 60 is outside 0-59"),
        ("* * 24 * * *", "hour field: 24 is outside 0-23"),
        ("* * * 0 * *", "day field: 0 is outside 1-31"),
        ("* * * * Foo *", "month field: 'Foo' is not a number"),
        ("* * * * * 7", "day-of-week field: 7 is outside 0-6"),
        ("*/0 * * * * *", "step '0' must be a positive number"),
        ("* 30-10 * * * *", "range '30-10' runs backwards"),
    ],
)
def test_invalid_schedules_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ncrontab.ScheduleError, match=message.replace("*", r"\*")):
        ncrontab.parse(expression)


def test_schedule_that_never_occurs_is_an_error() -> None:
    with pytest.raises(ncrontab.ScheduleError, match="never occurs"):
        ncrontab.parse("0 0 0 31 2 *").next_occurrence(at(2024, 1, 1))


def test_timer_reports_a_late_occurrence_as_past_due() -> None:
    import threading

    from certlc.host.bindings import HostedFunction
    from certlc.host.timers import TimerRunner

    stop = threading.Event()
    fired: list[object] = []

    def invoke(function: HostedFunction, datum: object, metadata: object) -> None:
        import azure.functions as func

        fired.append(func.get_binding_registry().get("timerTrigger").decode(datum, trigger_metadata=metadata))
        stop.set()

    times = iter([at(2024, 5, 1, 10, 30, 0)])  # the first reading schedules 11:00; the host then wakes at 11:00:05

    def clock() -> datetime:
        return next(times, at(2024, 5, 1, 11, 0, 5))

    function = HostedFunction("hourly", "timerTrigger", {"schedule": "0 0 * * * *"}, (), loaded=None)  # type: ignore[arg-type]
    TimerRunner(function, invoke, clock).run(stop)
    (request,) = fired
    assert request.past_due is True
    assert request.schedule_status["Next"] == at(2024, 5, 1, 12, 0, 0).isoformat()
