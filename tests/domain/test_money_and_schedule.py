from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.domain.money import format_units, parse_units
from smsgw.domain.schedule import BadSchedule, parse_time_to_send

NAIROBI = ZoneInfo("Africa/Nairobi")
NOW = 1_800_000_000.0


@given(st.integers(0, 10**14 - 1))
def test_units_round_trip(hundredths: int):
    assert parse_units(format_units(hundredths)) == hundredths


@pytest.mark.parametrize("text,value", [("12", 1200), ("12.5", 1250), ("12.50", 1250), ("0.01", 1), (" 3 ", 300)])
def test_parse_units(text: str, value: int):
    assert parse_units(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1.234", "1e3", "abc", "1,5", "1."])
def test_parse_units_refuses(text: str):
    with pytest.raises(ValueError):
        parse_units(text)


def test_format_negative():
    assert format_units(-150) == "-1.50"


def test_schedule_forms():
    assert parse_time_to_send(None, NOW, NAIROBI) is None
    assert parse_time_to_send("", NOW, NAIROBI) is None
    assert parse_time_to_send(int(NOW) + 60, NOW, NAIROBI) == NOW + 60
    assert parse_time_to_send(str(int(NOW) + 60), NOW, NAIROBI) == NOW + 60
    assert parse_time_to_send(int(NOW) - 60, NOW, NAIROBI) is None
    local = datetime.fromtimestamp(NOW + 3600, NAIROBI)
    assert parse_time_to_send(local.strftime("%Y-%m-%d %H:%M:%S"), NOW, NAIROBI) == NOW + 3600
    assert parse_time_to_send(local.strftime("%Y-%m-%d %H:%M"), NOW, NAIROBI) == NOW + 3600 - local.second


@pytest.mark.parametrize(
    "value",
    [
        True,
        [1],
        {"a": 1},
        "2026-13-01 10:00",
        "10:00",
        "1e9",
        -1,
        float("nan"),
        NOW + 400 * 86400,
        "١٧٩٠٠٠٠٠٠٠",
        "１８０００６００００",
        "२०२७-०१-०१ १०:००",
        "2027-01-01 1٠:00",
    ],
    ids=lambda v: ascii(v)[:24],
)
def test_schedule_refuses(value):
    with pytest.raises(BadSchedule):
        parse_time_to_send(value, NOW, NAIROBI)
