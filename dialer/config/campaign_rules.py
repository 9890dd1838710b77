"""Pydantic models for a campaign's calling rules (`campaigns/*.yaml`).

calling_hours, numbers, retries, dispositions, callbacks and revisit: what the
pure rules in `dialer.core` need, validated once when the campaign is loaded.
`campaigns/README.md` and `docs/campaign-rules.md` describe every field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from enum import Enum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialer.core.calling_window import CallingWindow
from dialer.core.dialable import DenyList
from dialer.core.dispositions import DispositionAction
from dialer.core.outcomes import RETRYABLE
from dialer.core.retry import RetryRule
from dialer.leads.phone_numbers import NumberPolicy, check_region

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. America/New_York)") from None
    return name


class CallingHours(_Strict):
    days: list[Weekday] = list(WEEKDAYS)
    start: str = Field("08:00", description="HH:MM in the customer's local time")
    end: str = Field("21:00", description="HH:MM (24:00 = end of day), exclusive")
    holidays: list[date] = []
    timezone: str | None = Field(
        None, description="zone for leads whose own zone is unknown (no column, not derivable)"
    )

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"not a time of day: {value!r} (HH:MM, 00:00 to 24:00)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_zone(value)

    @model_validator(mode="after")
    def _start_before_end(self) -> "CallingHours":
        if _minutes(self.start) >= _minutes(self.end):
            raise ValueError(f"start {self.start} must be before end {self.end}")
        if not self.days:
            raise ValueError("days is empty: the campaign could never call")
        return self

    def window(self) -> CallingWindow:
        return CallingWindow(
            days=frozenset(WEEKDAYS.index(d) for d in self.days),
            start_minute=_minutes(self.start),
            end_minute=_minutes(self.end),
            holidays=frozenset(self.holidays),
        )


class NumberFormat(str, Enum):
    e164 = "e164"
    as_is = "as_is"


class NumberRules(_Strict):
    format: NumberFormat = Field(
        NumberFormat.e164,
        description="e164: normalise and validate on import; as_is: keep digits as written (test labs)",
    )
    default_region: str | None = Field(
        None, description="ISO country code for numbers written without +, e.g. US; else config's default_region"
    )
    deny: list[str] = Field([], description="extra regular expressions; a matching number is never dialed")

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_region(value)

    @field_validator("deny")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
        return patterns

    def policy(self, config_region: str | None) -> NumberPolicy:
        return NumberPolicy(e164=self.format is NumberFormat.e164, default_region=self.default_region or config_region)

    def deny_list(self) -> DenyList:
        return DenyList.with_defaults(self.deny)


class RetryConfig(_Strict):
    delay_minutes: float = Field(ge=0, le=60 * 24 * 30)
    max_attempts: int = Field(
        ge=1, le=100,
        description="attempts of the lead in all, the first included (refused, interrupted: their own occurrences only)",
    )

    def rule(self) -> RetryRule:
        return RetryRule(delay=timedelta(minutes=self.delay_minutes), max_attempts=self.max_attempts)


# A Literal of plain strings, so the parsed `retries` keys stay plain strings.
RetryOutcome = Literal[tuple(o.value for o in RETRYABLE)]  # type: ignore[valid-type]

DEFAULT_RETRIES: dict[str, RetryConfig] = {
    "busy": RetryConfig(delay_minutes=10, max_attempts=3),
    "no_answer": RetryConfig(delay_minutes=60, max_attempts=3),
    "congestion": RetryConfig(delay_minutes=5, max_attempts=3),
    "machine": RetryConfig(delay_minutes=120, max_attempts=2),
    "abandoned": RetryConfig(delay_minutes=60, max_attempts=3),
    "interrupted": RetryConfig(delay_minutes=30, max_attempts=3),
    "refused": RetryConfig(delay_minutes=15, max_attempts=5),
}

REFUSED_RETRY = DEFAULT_RETRIES["refused"]
"""Asterisk refused the Originate: nobody was called, so the lead is never closed by
it at once; a campaign whose `retries` leave `refused` out still gets this rule."""


DEFAULT_DISPOSITIONS: dict[str, DispositionAction] = {
    "sale": DispositionAction.close,
    "not_interested": DispositionAction.close,
    "callback": DispositionAction.callback,
    "wrong_number": DispositionAction.close,
    "dnc": DispositionAction.dnc,
    "survey_done": DispositionAction.close,
}


class CallbackConfig(_Strict):
    agent_grace: int = Field(
        120,
        ge=0,
        le=3600,
        description="seconds a due callback waits for its own agent to be free before anyone may take it",
    )


EventKind = Literal["complaint_closed", "new_customer", "low_satisfaction"]


def check_disposition_codes(codes: dict[str, DispositionAction]) -> dict[str, DispositionAction]:
    for code in codes:
        if not re.fullmatch(r"[a-z0-9_]{1,32}", code):
            raise ValueError(f"disposition code {code!r}: lower-case letters, digits and _ only, at most 32")
    return codes


def retry_rules(retries: Mapping[str, RetryConfig]) -> dict[str, RetryRule]:
    return {"refused": REFUSED_RETRY.rule(), **{outcome: config.rule() for outcome, config in retries.items()}}
