"""E.164 normalisation and time zones on import (libphonenumber), rejected rows with their line."""

from __future__ import annotations

import pytest

from dialer.leads.csv_import import parse_leads_csv
from dialer.leads.phone_numbers import NumberError, NumberPolicy, normalise, time_zones

US = NumberPolicy(e164=True, default_region="US")


@pytest.mark.parametrize(
    "raw, region, e164",
    [
        ("(212) 555-0123", "US", "+12125550123"),
        ("+1 212 555 0123", None, "+12125550123"),
        ("+44 20 7946 0018", "US", "+442079460018"),
        ("030 1234567", "DE", "+49301234567"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, region: str | None, e164: str) -> None:
    assert normalise(raw, region) == e164


@pytest.mark.parametrize(
    "raw, region, message",
    [
        ("2125550123", None, "no country code"),
        ("12345", "US", "not a valid number"),
        ("911", "US", "emergency"),
        ("112", "DE", "emergency"),
        ("+1 900 555 0123", None, "premium-rate"),
        ("hello", "US", "not a phone number"),
    ],
)
def test_numbers_that_may_not_be_imported_say_why(raw: str, region: str | None, message: str) -> None:
    with pytest.raises(NumberError, match=message):
        normalise(raw, region)


def test_time_zones_come_from_the_number() -> None:
    assert time_zones("+12125550123") == ("America/New_York",)
    assert time_zones("+4930123456") == ("Europe/Berlin",)
    assert len(time_zones("+18005550123")) > 1  # toll-free: the whole NANP
    assert time_zones("1030200007") == ()


def test_import_normalises_numbers_rejects_bad_ones_by_line_and_derives_zones() -> None:
    text = (
        "phone,name,timezone\n"
        "(212) 555-0123,Ann,\n"
        "12345,Bob,\n"
        "+1 212 555 0123,Ann again,\n"  # the same number as line 2 once normalised
        "+4930123456,Carl,\n"
        "+1 310 555 0100,Dee,America/New_York\n"  # an explicit zone wins
        "911,Emergency,\n"
    )
    parsed = parse_leads_csv(text, US)
    assert [(r.line, r.phone, r.timezone) for r in parsed.rows] == [
        (2, "+12125550123", "America/New_York"),
        (5, "+4930123456", "Europe/Berlin"),
        (6, "+13105550100", "America/New_York"),
    ]
    assert [(e.line, e.column) for e in parsed.errors] == [(3, "phone"), (4, "phone"), (7, "phone")]
    assert "already on line 2" in parsed.errors[1].message
    assert "emergency" in parsed.errors[2].message


def test_without_a_policy_numbers_are_kept_as_written() -> None:
    parsed = parse_leads_csv("phone\n1030200007\n")
    assert [r.phone for r in parsed.rows] == ["1030200007"]
    assert parsed.rows[0].timezone is None
    assert parse_leads_csv("phone\n1030200007\n", NumberPolicy(e164=False)).rows == parsed.rows
