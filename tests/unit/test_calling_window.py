"""Calling windows in the customer's own time, with a frozen clock: zones, DST, holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dialer.config.campaign_rules import CallingHours
from dialer.core.calling_window import CallingWindow, lead_zones

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
EVERY_DAY = frozenset(range(7))
US_RULE = CallingWindow(days=EVERY_DAY, start_minute=8 * 60, end_minute=21 * 60)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_same_instant_is_open_in_one_zone_and_closed_in_another() -> None:
    moment = utc(2026, 1, 15, 14, 0)  # 09:00 in New York, 06:00 in Los Angeles, 15:00 in Berlin
    assert US_RULE.open_at(moment, NEW_YORK)
    assert not US_RULE.open_at(moment, LOS_ANGELES)
    assert US_RULE.open_at(moment, BERLIN)


def test_the_end_is_exclusive_and_the_start_inclusive() -> None:
    assert US_RULE.open_at(utc(2026, 1, 15, 13, 0), NEW_YORK)  # 08:00:00 local
    assert not US_RULE.open_at(utc(2026, 1, 15, 12, 59, 59), NEW_YORK)
    assert not US_RULE.open_at(utc(2026, 1, 16, 2, 0), NEW_YORK)  # 21:00:00 local
    assert US_RULE.open_at(utc(2026, 1, 16, 1, 59, 59), NEW_YORK)


def test_daylight_saving_moves_the_window_in_utc() -> None:
    # New York is UTC-5 in winter and UTC-4 from 2026-03-08: 12:30 UTC is 07:30 then 08:30.
    assert not US_RULE.open_at(utc(2026, 3, 7, 12, 30), NEW_YORK)
    assert US_RULE.open_at(utc(2026, 3, 9, 12, 30), NEW_YORK)
    # And back on 2026-11-01.
    assert US_RULE.open_at(utc(2026, 10, 31, 12, 30), NEW_YORK)
    assert not US_RULE.open_at(utc(2026, 11, 2, 12, 30), NEW_YORK)


def test_next_opening_across_a_spring_forward_night() -> None:
    # Saturday 2026-03-07 22:00 in New York (EST): the next 08:00 is Sunday, already EDT.
    opening = US_RULE.next_opening(utc(2026, 3, 8, 3, 0), [NEW_YORK])
    assert opening == utc(2026, 3, 8, 12, 0)
    assert opening.astimezone(NEW_YORK).hour == 8


def test_an_opening_inside_the_dst_gap_opens_at_the_first_valid_instant() -> None:
    night = CallingWindow(days=EVERY_DAY, start_minute=2 * 60 + 30, end_minute=5 * 60)
    # 02:30 does not exist in New York on 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    opening = night.next_opening(utc(2026, 3, 8, 6, 0), [NEW_YORK])
    assert opening == utc(2026, 3, 8, 7, 0)
    assert night.open_at(opening, NEW_YORK)


def test_weekdays_and_holidays_are_the_customers_local_dates() -> None:
    weekdays = CallingWindow(
        days=frozenset(range(5)), start_minute=9 * 60, end_minute=17 * 60, holidays=frozenset({date(2026, 12, 25)})
    )
    # Friday 2026-12-25 is a holiday; Saturday and Sunday are not weekdays: next is Monday 09:00 Berlin.
    opening = weekdays.next_opening(utc(2026, 12, 24, 17, 0), [BERLIN])
    assert opening == utc(2026, 12, 28, 8, 0)
    # Monday 01:00 in Berlin is still Sunday in New York.
    assert not weekdays.open_at(utc(2026, 12, 28, 0, 30), NEW_YORK)


def test_a_lead_with_several_zones_waits_until_the_window_is_open_in_all() -> None:
    moment = utc(2026, 1, 15, 14, 0)  # 09:00 New York, 06:00 Los Angeles
    assert not US_RULE.open_in_all(moment, [NEW_YORK, LOS_ANGELES])
    assert US_RULE.next_opening(moment, [NEW_YORK, LOS_ANGELES]) == utc(2026, 1, 15, 16, 0)


def test_zones_that_never_share_an_open_hour_give_no_opening() -> None:
    short = CallingWindow(days=EVERY_DAY, start_minute=9 * 60, end_minute=10 * 60)
    assert short.next_opening(utc(2026, 1, 15, 0, 0), [BERLIN, LOS_ANGELES]) is None


def test_lead_zones_prefer_the_explicit_zone_then_the_number_then_the_campaign() -> None:
    assert lead_zones("Europe/Berlin", ["America/New_York"], "UTC") == [BERLIN]
    assert lead_zones(None, ["America/New_York", "America/Los_Angeles"], "UTC") == [NEW_YORK, LOS_ANGELES]
    assert lead_zones(None, [], "Europe/Berlin") == [BERLIN]
    assert lead_zones(None, [], None) == []


@given(
    moment=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)),
    zone=st.sampled_from([NEW_YORK, LOS_ANGELES, BERLIN, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata")]),
    start=st.integers(0, 23 * 60),
    length=st.integers(1, 12 * 60),
)
def test_next_opening_is_open_and_nothing_earlier_is(moment: datetime, zone: ZoneInfo, start: int, length: int) -> None:
    window = CallingWindow(days=frozenset({0, 2, 4}), start_minute=start, end_minute=min(1440, start + length))
    opening = window.next_opening(moment, [zone])
    assert opening is not None and opening >= moment
    assert window.open_at(opening, zone)
    # Nothing in the minutes before it was open (checked on a coarse grid).
    probe = opening - timedelta(minutes=1)
    while probe >= moment and probe > opening - timedelta(hours=6):
        assert not window.open_at(probe, zone)
        probe -= timedelta(minutes=7)


def test_calling_hours_config_validates_and_builds_the_window() -> None:
    hours = CallingHours(days=["mon", "fri"], start="09:30", end="24:00", holidays=["2026-12-25"])
    assert hours.window() == CallingWindow(
        days=frozenset({0, 4}), start_minute=570, end_minute=1440, holidays=frozenset({date(2026, 12, 25)})
    )
    with pytest.raises(ValidationError, match="before end"):
        CallingHours(start="21:00", end="08:00")
    with pytest.raises(ValidationError, match="not a time of day"):
        CallingHours(start="8am")
    with pytest.raises(ValidationError, match="unknown time zone"):
        CallingHours(timezone="Mars/Olympus")
