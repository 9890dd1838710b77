"""May a lead be called at a given moment, in the customer's own time? (pure)

A window is weekdays, a daily span of local clock time and holidays. A lead
may have several candidate zones (a number whose area spans zones): it is
callable only when the window is open in every one of them. Moments are
aware datetimes; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

# How far ahead `next_opening` looks before giving up: a week covers every
# weekday pattern, the extra days a run of holidays.
SEARCH_DAYS = 15


@dataclass(frozen=True)
class CallingWindow:
    days: frozenset[int]
    """Allowed weekdays, 0 = Monday."""
    start_minute: int
    """Minutes after local midnight the window opens."""
    end_minute: int
    """Minutes after local midnight it closes (exclusive); 1440 = midnight."""
    holidays: frozenset[date] = frozenset()

    def open_at(self, moment: datetime, zone: ZoneInfo) -> bool:
        local = moment.astimezone(zone)
        if local.weekday() not in self.days or local.date() in self.holidays:
            return False
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return self.start_minute * 60 <= seconds < self.end_minute * 60

    def open_in_all(self, moment: datetime, zones: Sequence[ZoneInfo]) -> bool:
        return all(self.open_at(moment, zone) for zone in zones)

    def next_opening(self, moment: datetime, zones: Sequence[ZoneInfo]) -> datetime | None:
        """The first moment at or after `moment` when the window is open in every zone.

        None when there is none within `SEARCH_DAYS` (windows that never
        overlap across the lead's zones).
        """
        if not zones:
            raise ValueError("a lead needs at least one time zone")
        if self.open_in_all(moment, zones):
            return moment
        # The window opens everywhere at once only at some zone's own opening
        # time, so those are the only candidates to test.
        candidates = sorted(opening for zone in zones for opening in self._openings(moment, zone) if opening > moment)
        return next((c for c in candidates if self.open_in_all(c, zones)), None)

    def _openings(self, moment: datetime, zone: ZoneInfo) -> list[datetime]:
        first_day = moment.astimezone(zone).date() - timedelta(days=1)
        openings = []
        for offset in range(SEARCH_DAYS + 1):
            day = first_day + timedelta(days=offset)
            hours, minutes = divmod(self.start_minute, 60)
            # Aware + timedelta is wall-clock arithmetic in the zone.
            local = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(hours=hours, minutes=minutes)
            utc = local.astimezone(UTC)
            if utc.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
                # The opening falls in a spring-forward gap: open at the first valid instant after it.
                utc = _after_gap(local, zone)
            openings.append(utc)
        return openings


def _after_gap(local: datetime, zone: ZoneInfo) -> datetime:
    """The first instant whose wall clock is at or after `local` (which does not exist)."""
    probe = local.replace(tzinfo=None)
    instant = datetime(probe.year, probe.month, probe.day, tzinfo=zone).astimezone(UTC)
    while instant.astimezone(zone).replace(tzinfo=None) < probe:
        instant += timedelta(minutes=1)
    return instant


def lead_zones(explicit: str | None, derived: Sequence[str], fallback: str | None) -> list[ZoneInfo]:
    """The zones a lead's window is checked in: its own, else the number's, else the campaign's.

    An empty list means the zone is unknown (a number kept as written, no
    column, no campaign zone): the caller decides what that means.
    """
    if explicit:
        return [ZoneInfo(explicit)]
    if derived:
        return [ZoneInfo(name) for name in derived]
    if fallback:
        return [ZoneInfo(fallback)]
    return []
