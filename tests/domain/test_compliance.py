"""Keyword parsing, consent words, the promotional window and the footer: pure rules."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from smsgw.domain.compliance import (
    DEFAULT_OPTIN_KEYWORDS,
    DEFAULT_OPTOUT_KEYWORDS,
    Consent,
    Window,
    consent_of,
    parse_keyword,
    promotional_due,
    with_footer,
    words,
)

NAIROBI = ZoneInfo("Africa/Nairobi")
OUT = frozenset(DEFAULT_OPTOUT_KEYWORDS)
IN = frozenset(DEFAULT_OPTIN_KEYWORDS)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("stop", ["STOP"]),
        ("  Stop. please", ["STOP", "PLEASE"]),
        ("news weather today", ["NEWS", "WEATHER"]),
        ("", []),
        ("!!!", []),
        ("ondoa", ["ONDOA"]),
        ("Café au lait", ["CAFÉ", "AU"]),
    ],
    ids=["lower", "punctuation", "two-of-three", "empty", "no-word", "swahili", "accented"],
)
def test_words(text, expected):
    assert words(text) == expected


@pytest.mark.parametrize(
    "word, expected",
    [
        ("STOP", Consent.OPT_OUT),
        ("STOPALL", Consent.OPT_OUT_ALL),
        ("UNSUBSCRIBE", Consent.OPT_OUT),
        ("ONDOA", Consent.OPT_OUT),
        ("START", Consent.OPT_IN),
        ("ANZA", Consent.OPT_IN),
        ("NEWS", Consent.NONE),
        (None, Consent.NONE),
    ],
    ids=["stop", "stopall", "unsubscribe", "swahili-out", "start", "swahili-in", "other", "none"],
)
def test_consent_of(word, expected):
    assert consent_of(word, OUT, IN) is expected


def test_stopall_is_an_ordinary_opt_out_when_the_setting_drops_it_as_such():
    assert consent_of("STOPALL", frozenset({"STOP"}), IN) is Consent.NONE


@pytest.mark.parametrize("raw, expected", [("news", "NEWS"), (" Promo1 ", "PROMO1")], ids=["lower", "spaces"])
def test_parse_keyword(raw, expected):
    assert parse_keyword(raw) == expected


@pytest.mark.parametrize("raw", ["two words", "", "a-b", "x" * 33], ids=["two-words", "empty", "punctuation", "too-long"])
def test_parse_keyword_refuses(raw):
    with pytest.raises(ValueError):
        parse_keyword(raw)


def at(hour: int, minute: int = 0, day: int = 1) -> float:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=NAIROBI).timestamp()


@pytest.mark.parametrize(
    "window, when, expected",
    [
        ("08:00-18:00", at(12), at(12)),
        ("08:00-18:00", at(8), at(8)),
        ("08:00-18:00", at(7, 59), at(8)),
        ("08:00-18:00", at(18), at(8, day=2)),
        ("08:00-18:00", at(23, 30), at(8, day=2)),
        ("07:00-19:00", at(6, 30), at(7)),
        ("20:00-06:00", at(23), at(23)),
        ("20:00-06:00", at(3), at(3)),
        ("20:00-06:00", at(12), at(20)),
    ],
    ids=["inside", "at-opening", "just-before", "at-closing", "night", "other-window", "overnight-late", "overnight-early", "overnight-closed"],
)
def test_window_next_opening(window, when, expected):
    assert Window.parse(window).next_opening(when, NAIROBI) == expected


@pytest.mark.parametrize(
    "raw", ["8-18", "08:00-08:00", "25:00-26:00", "08:60-09:00", "08:00"], ids=["no-minutes", "empty", "hours", "minutes", "one-end"]
)
def test_window_refuses(raw):
    with pytest.raises(ValueError):
        Window.parse(raw)


def test_promotional_due_moves_with_the_clock_offset():
    window = Window.parse("08:00-18:00")
    real_now_ms = int(at(12) * 1000)
    # The gateway's clock says 07:59:58: the window opens two seconds of real time later.
    offset = at(7, 59) + 58 - at(12)
    assert promotional_due(real_now_ms, window, NAIROBI, offset) == real_now_ms + 2000
    assert promotional_due(real_now_ms, window, NAIROBI, 0.0) == real_now_ms


@pytest.mark.parametrize(
    "text, footer, expected",
    [
        ("Sale today", "STOP*456*9*5#", "Sale today STOP*456*9*5#"),
        ("Sale today  ", "STOP*456*9*5#", "Sale today STOP*456*9*5#"),
        ("Sale STOP*456*9*5#", "STOP*456*9*5#", "Sale STOP*456*9*5#"),
        ("Sale", None, "Sale"),
    ],
    ids=["appended", "trailing-space", "already-there", "no-footer"],
)
def test_with_footer(text, footer, expected):
    assert with_footer(text, footer) == expected
