"""One way to write a time: ISO 8601 in UTC with a Z, naive datetimes refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from renewal.clock import iso_utc, utc_now

TOKYO = timezone(timedelta(hours=9))


def test_any_zone_is_written_in_utc_to_the_precision_of_its_stream() -> None:
    moment = datetime(2031, 2, 3, 13, 5, 6, 789_000, tzinfo=TOKYO)
    assert iso_utc(moment) == "2031-02-03T04:05:06Z"
    assert iso_utc(moment, timespec="milliseconds") == "2031-02-03T04:05:06.789Z"
    assert iso_utc(moment.replace(microsecond=0), timespec="milliseconds") == "2031-02-03T04:05:06.000Z"


def test_a_naive_datetime_is_refused_because_its_zone_would_be_the_hosts() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        iso_utc(datetime(2031, 1, 1))
    assert iso_utc(utc_now()).endswith("Z")
