"""Money of reseller transfers: amounts, units at a child's rate, and how units are shown."""

from __future__ import annotations

import pytest

from smsgw.domain.money import (
    MAX_TRANSFER_AMOUNT,
    format_count,
    parse_amount,
    units_for_amount,
)


@pytest.mark.parametrize(
    ("text", "hundredths"),
    [("5", 500), ("5.5", 550), ("0.01", 1), (" 12.50 ", 1250), ("10000000", MAX_TRANSFER_AMOUNT)],
    ids=["whole", "one-decimal", "smallest", "spaces", "the-bound"],
)
def test_parse_amount(text, hundredths):
    assert parse_amount(text) == hundredths


@pytest.mark.parametrize(
    "text",
    ["0", "0.00", "-1", "1.001", "10000000.01", "1e3", "", "abc", "1,5"],
    ids=["zero", "zero-decimals", "negative", "three-decimals", "over-bound", "exponent", "empty", "letters", "comma"],
)
def test_parse_amount_refuses(text):
    with pytest.raises(ValueError):
        parse_amount(text)


@pytest.mark.parametrize(
    ("amount", "rate", "units"),
    [(500, 100, 500), (1000, 80, 1250), (100, 300, 33), (1, 200, 0), (999, 100, 999), (200, 3, 6666)],
    ids=["rate-1", "rate-0.80", "rounded-down", "too-little", "cents", "rate-0.03"],
)
def test_units_for_amount_rounds_down_to_a_hundredth(amount, rate, units):
    assert units_for_amount(amount, rate) == units


@pytest.mark.parametrize(
    ("hundredths", "text"),
    [(500, "5"), (1250, "12.50"), (33, "0.33"), (0, "0"), (100_000, "1000")],
    ids=["whole", "half", "fraction", "zero", "large"],
)
def test_format_count(hundredths, text):
    assert format_count(hundredths) == text
