"""--at and --duration as users write them."""

from datetime import datetime, timedelta, timezone

import pytest

from linly_push.errors import UsageError
from linly_push.schedule import LATE_GRACE, parse_duration, parse_start

TZ = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 25, 19, 30, 0, tzinfo=TZ)


def at(text, now=NOW):
    return parse_start(text, now, local=lambda naive: naive.replace(tzinfo=TZ))


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("2.5", 2.5), ("90s", 90), ("45m", 2700), ("1h30m", 5400), ("2.5h", 9000),
    ("1h2m3s", 3723), ("1:30", 90), ("1:30:00", 5400), (" 10M ", 600),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "soon", "1x", "1:3", "h", "5 m", "1:99", "1:75:00"])
def test_bad_durations_say_what_is_expected(text):
    with pytest.raises(UsageError, match="like 90, 45m"):
        parse_duration(text)


def test_clock_time_is_today_in_local_time():
    assert at("20:00") == datetime(2026, 11, 25, 20, 0, tzinfo=TZ)
    assert at("19:45:30") == datetime(2026, 11, 25, 19, 45, 30, tzinfo=TZ)


def test_iso_times_with_and_without_offset():
    assert at("2026-12-01T20:00") == datetime(2026, 12, 1, 20, 0, tzinfo=TZ)
    utc = at("2026-12-01T20:00+00:00")
    assert utc == datetime(2026, 12, 2, 4, 0, tzinfo=TZ)
    assert at("2026-12-01T12:00Z") == datetime(2026, 12, 1, 20, 0, tzinfo=TZ)
    assert at("2026-12-01 20:00") == datetime(2026, 12, 1, 20, 0, tzinfo=TZ)


def test_a_time_just_passed_still_starts_but_an_older_one_is_an_error():
    recent = NOW - timedelta(seconds=LATE_GRACE - 5)
    assert at(recent.strftime("%H:%M:%S")) == recent
    with pytest.raises(UsageError, match=r"19:00: that was 30 min ago today \(it is 19:30:00\); for tomorrow give --at 2026-11-26T19:00$"):
        at("19:00")
    with pytest.raises(UsageError, match="that was 23.5 h ago .* give a time in the future"):
        at("2026-11-24T20:00+08:00")


@pytest.mark.parametrize("text", ["25:00", "8pm", "tomorrow", "2026-13-01T10:00", "20:61"])
def test_bad_times_say_what_is_expected(text):
    with pytest.raises(UsageError, match="takes a time like 20:00"):
        at(text)


def test_a_local_time_takes_the_offset_of_its_own_date_across_a_daylight_saving_change():
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database")
    now = datetime(2026, 3, 20, 12, 0, tzinfo=timezone(timedelta(hours=1)))  # as datetime.now().astimezone() gives
    start = parse_start("2026-04-01T20:00", now, local=lambda naive: naive.replace(tzinfo=berlin))
    assert start.utcoffset() == timedelta(hours=2) and start.hour == 20  # summer time on that date


def test_the_system_zone_is_used_by_default():
    now = datetime.now().astimezone()
    later = (now + timedelta(hours=1)).replace(microsecond=0)
    assert parse_start(later.strftime("%Y-%m-%dT%H:%M:%S"), now) == later
