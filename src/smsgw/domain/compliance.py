"""Pure rules of two-way traffic and compliance: what an inbound message asks for (its
keyword, opt-out or opt-in), promotional sending windows, and the opt-out footer.

No I/O: the store and the acceptance path apply these.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

# The contract's opt-out words, and Swahili ones subscribers in Kenya use for the same:
# ONDOA "remove (me)", ACHA "stop / leave off", SITAKI "I do not want (it)".
DEFAULT_OPTOUT_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ONDOA", "ACHA", "SITAKI")
# ANZA is Swahili for "start".
DEFAULT_OPTIN_KEYWORDS = ("START", "ANZA")
# Opts out of every shortcode of the partner, not only the one it was sent to.
ALL_SHORTCODES_KEYWORD = "STOPALL"
# The shortcode value of an opt-out that covers all of a partner's shortcodes.
ALL_SHORTCODES = "*"
MAX_KEYWORD_LENGTH = 32

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text: str, limit: int = 2) -> list[str]:
    """The first `limit` words of a message in upper case, punctuation dropped ("Stop." is STOP)."""
    out = []
    for match in _WORD.finditer(text):
        out.append(match.group(0).upper())
        if len(out) == limit:
            break
    return out


def parse_keyword(raw: str) -> str:
    """A keyword as the operator types it, in the form it is stored and matched (upper case,
    one word); ValueError when it is not one word."""
    found = words(raw, 2)
    if len(found) != 1 or found[0] != raw.strip().upper() or len(found[0]) > MAX_KEYWORD_LENGTH:
        raise ValueError(f"a keyword is one word of letters and digits, at most {MAX_KEYWORD_LENGTH} characters: {raw!r}")
    return found[0]


class Consent(enum.Enum):
    NONE = "none"
    OPT_OUT = "opt-out"  # from the shortcode it was sent to
    OPT_OUT_ALL = "opt-out-all"  # from every shortcode of the partner
    OPT_IN = "opt-in"


def consent_of(word: str | None, optout_keywords: frozenset[str], optin_keywords: frozenset[str]) -> Consent:
    """What a message whose first word is `word` says about consent."""
    if word is None:
        return Consent.NONE
    if word == ALL_SHORTCODES_KEYWORD and word in optout_keywords:
        return Consent.OPT_OUT_ALL
    if word in optout_keywords:
        return Consent.OPT_OUT
    if word in optin_keywords:
        return Consent.OPT_IN
    return Consent.NONE


def parse_keywords(raw: str) -> frozenset[str]:
    """A comma-separated keyword list setting; ValueError for an entry that is not one word."""
    return frozenset(parse_keyword(part) for part in raw.split(",") if part.strip())


# -- promotional sending window ----------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Daily sending hours in the gateway's time zone, [start, end) in minutes after midnight.
    start > end is a window over midnight (e.g. 20:00-06:00)."""

    start: int
    end: int

    @classmethod
    def parse(cls, raw: str) -> Window:
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", raw)
        if match is None:
            raise ValueError(f"{raw!r} is not a window like 08:00-18:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise ValueError(f"{raw!r} is not a window like 08:00-18:00 (hours 00-24, minutes 00-59)")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            raise ValueError(f"{raw!r} is an empty window")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    def contains(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def next_opening(self, when: float, zone: ZoneInfo) -> float:
        """`when` (Unix seconds) if it falls inside the window, else the Unix time the window
        next opens, in `zone` (days of a clock change included)."""
        local = dt.datetime.fromtimestamp(when, zone)
        if self.contains(local.hour * 60 + local.minute):
            return when
        opening = local.replace(hour=self.start // 60, minute=self.start % 60, second=0, microsecond=0)
        if opening <= local:
            opening = (opening.replace(tzinfo=None) + dt.timedelta(days=1)).replace(tzinfo=zone)
        return opening.timestamp()


# Safaricom's promotional sending hours, the default of SMSGW_PROMO_WINDOW.
DEFAULT_PROMO_WINDOW = Window(8 * 60, 18 * 60)


# -- footer ------------------------------------------------------------------------------------


def with_footer(text: str, footer: str | None) -> str:
    """The text a promotional message goes out with: the network's opt-out footer after a
    space (a text that already ends with it is left as it is)."""
    if not footer or text.rstrip().endswith(footer):
        return text
    return f"{text.rstrip()} {footer}"


def promotional_due(due_ms: int, window: Window, zone: ZoneInfo, clock_offset_seconds: float = 0.0) -> int:
    """When a promotional message due at `due_ms` may go out: then, if inside the window, else
    at the window's next opening. `clock_offset_seconds` is where the gateway's clock stands
    against the real one (tests move it)."""
    shifted = due_ms / 1000 + clock_offset_seconds
    return round((window.next_opening(shifted, zone) - clock_offset_seconds) * 1000)
