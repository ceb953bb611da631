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
