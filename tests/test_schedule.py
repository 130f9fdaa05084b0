"""--at and --duration as users write them."""

from datetime import datetime, timedelta, timezone

import pytest

from linly_push.errors import UsageError
from linly_push.schedule import LATE_GRACE, parse_duration, parse_start

TZ = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 25, 19, 30, 0, tzinfo=TZ)


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("2.5", 2.5), ("90s", 90), ("45m", 2700), ("1h30m", 5400), ("2.5h", 9000),
    ("1h2m3s", 3723), ("1:30", 90), ("1:30:00", 5400), (" 10M ", 600),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "soon", "1x", "1:3", "h", "5 m"])
def test_bad_durations_say_what_is_expected(text):
    with pytest.raises(UsageError, match="like 90, 45m"):
        parse_duration(text)


def test_clock_time_is_today_in_local_time():
    assert parse_start("20:00", NOW) == datetime(2026, 11, 25, 20, 0, tzinfo=TZ)
    assert parse_start("19:45:30", NOW) == datetime(2026, 11, 25, 19, 45, 30, tzinfo=TZ)


def test_iso_times_with_and_without_offset():
    assert parse_start("2026-12-01T20:00", NOW) == datetime(2026, 12, 1, 20, 0, tzinfo=TZ)
    utc = parse_start("2026-12-01T20:00+00:00", NOW)
    assert utc == datetime(2026, 12, 2, 4, 0, tzinfo=TZ)
    assert parse_start("2026-12-01T12:00Z", NOW) == datetime(2026, 12, 1, 20, 0, tzinfo=TZ)
    assert parse_start("2026-12-01 20:00", NOW) == datetime(2026, 12, 1, 20, 0, tzinfo=TZ)


def test_a_time_just_passed_still_starts_but_an_older_one_is_an_error():
    recent = NOW - timedelta(seconds=LATE_GRACE - 5)
    assert parse_start(recent.strftime("%H:%M:%S"), NOW) == recent
    with pytest.raises(UsageError, match=r"19:00: that was 30 min ago today \(it is 19:30:00\); for tomorrow give --at 2026-11-26T19:00$"):
        parse_start("19:00", NOW)
    with pytest.raises(UsageError, match="that was 23.5 h ago .* give a time in the future"):
        parse_start("2026-11-24T20:00+08:00", NOW)


@pytest.mark.parametrize("text", ["25:00", "8pm", "tomorrow", "2026-13-01T10:00", "20:61"])
def test_bad_times_say_what_is_expected(text):
    with pytest.raises(UsageError, match="takes a time like 20:00"):
        parse_start(text, NOW)
