"""`timeToSend`: Unix seconds, or `YYYY-MM-DD HH:MM[:SS]` in the gateway's time zone."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

# ASCII digits only: int() and \d also take other scripts' digits, which no client means.
_LOCAL = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?\Z")
_DIGITS = re.compile(r"^[0-9]{1,12}\Z")
# A schedule further out than this is a typo (or milliseconds), not a campaign.
MAX_AHEAD_SECONDS = 366 * 86400


class BadSchedule(ValueError):
    pass


def parse_time_to_send(value: object, now: float, zone: ZoneInfo) -> float | None:
    """When to send, as Unix seconds; None for "now" (absent, empty or past)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadSchedule("timeToSend must be Unix seconds or YYYY-MM-DD HH:MM[:SS]")
    if isinstance(value, int):
        when = float(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise BadSchedule("timeToSend must be a finite number")
        when = value
    elif isinstance(value, str):
        text = value.strip()
        if _DIGITS.match(text):
            when = float(int(text))
        else:
            match = _LOCAL.match(text)
            if match is None:
                raise BadSchedule("timeToSend must be Unix seconds or YYYY-MM-DD HH:MM[:SS]")
            year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
            try:
                when = datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()
            except ValueError:
                raise BadSchedule(f"timeToSend {text!r} is not a real date and time") from None
    else:
        raise BadSchedule("timeToSend must be Unix seconds or YYYY-MM-DD HH:MM[:SS]")
    if when < 0:
        raise BadSchedule("timeToSend must not be negative")
    if when <= now:
        return None
    if when - now > MAX_AHEAD_SECONDS:
        raise BadSchedule("timeToSend is more than a year ahead")
    return when
