"""Credit amounts. Partners buy units; prices and balances carry two decimals and are kept
as integer hundredths so that no sum ever rounds."""

from __future__ import annotations

import re

_AMOUNT = re.compile(r"^(\d{1,12})(?:\.(\d{1,2}))?$")


def parse_units(text: str) -> int:
    """'12', '12.5' or '12.50' -> 1250 hundredths. Raises ValueError on anything else."""
    match = _AMOUNT.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an amount of units with at most two decimals")
    whole, fraction = match.groups()
    return int(whole) * 100 + int((fraction or "0").ljust(2, "0"))


def format_units(hundredths: int) -> str:
    """1250 -> '12.50' (the contract's `credit` format)."""
    sign = "-" if hundredths < 0 else ""
    whole, fraction = divmod(abs(hundredths), 100)
    return f"{sign}{whole}.{fraction:02d}"


# The most one `credit` transfer may move, in hundredths of money: a typo of a few digits is
# refused instead of emptying a reseller's balance into one child.
MAX_TRANSFER_AMOUNT = 10_000_000_00
# A child's rate (money per unit), in hundredths.
MIN_RATE, MAX_RATE = 1, 1_000_000_00


def parse_amount(text: str, limit: int = MAX_TRANSFER_AMOUNT) -> int:
    """A positive amount of money with at most two decimals and at most `limit` hundredths,
    as hundredths. Raises ValueError otherwise."""
    hundredths = parse_units(text)
    if hundredths <= 0:
        raise ValueError(f"{text!r} must be more than zero")
    if hundredths > limit:
        raise ValueError(f"{text!r} is more than {format_units(limit)}")
    return hundredths


def units_for_amount(amount: int, rate: int) -> int:
    """Units (hundredths) that `amount` (hundredths of money) buys at `rate` (hundredths of
    money per unit): amount ÷ rate, rounded down to a hundredth of a unit."""
    return amount * 100 // rate


def format_count(hundredths: int) -> str:
    """500 -> '5', 1250 -> '12.50': whole units without decimals (the contract's `sms-units`)."""
    return str(hundredths // 100) if hundredths % 100 == 0 else format_units(hundredths)
