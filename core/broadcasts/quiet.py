"""Quiet hours: nothing is sent at night in the consultation's time zone; a message due then
waits for the morning.

Pure: a moment and the settings in, a moment out. Local times are read with `zoneinfo`, so a
night that crosses midnight, and the nights when clocks change (a shorter or a longer one),
end at the wall-clock time the organiser wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from core.definitions import BroadcastSettings


def is_quiet(local: clock_time, start: clock_time, end: clock_time) -> bool:
    """Whether a wall-clock time falls in the quiet hours [start, end): a night that crosses
    midnight (21:00-09:00) or one that does not (01:00-06:00); start == end means none."""
    if start < end:
        return start <= local < end
    if start > end:
        return local >= start or local < end
    return False


def next_allowed(moment: datetime, settings: BroadcastSettings) -> datetime:
    """The first moment at or after `moment` (aware) outside the quiet hours, in UTC.

    A quiet night ends at `quiet_end` on the local calendar: the same day when the moment is
    after midnight, the next day when it is in the evening. A `quiet_end` that does not exist
    that day (the hour skipped when clocks go forward) reads as the instant the clocks reached
    it, one hour later on the wall; one that exists twice (clocks go back) as the first.
    """
    if moment.tzinfo is None:
        raise ValueError("next_allowed needs an aware datetime")
    start, end = settings.quiet_start, settings.quiet_end
    if start is None or end is None:
        return moment.astimezone(UTC)
    zone = ZoneInfo(settings.time_zone)
    local = moment.astimezone(zone)
    if not is_quiet(local.time().replace(tzinfo=None), start, end):
        return moment.astimezone(UTC)
    day = local.date()
    if start > end and local.time().replace(tzinfo=None) >= start:
        day += timedelta(days=1)  # an evening: the night ends tomorrow morning
    # fold=0: an ambiguous end is the first of its two instants; a skipped one maps past the gap.
    morning = datetime.combine(day, end.replace(tzinfo=None), tzinfo=zone).astimezone(UTC)
    return max(morning, moment.astimezone(UTC))
