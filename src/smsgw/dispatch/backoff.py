"""Retry spacing shared by SMSC retries and callback retries."""

from __future__ import annotations

import random


def backoff_ms(attempt: int, base_seconds: float, max_seconds: float) -> int:
    """Exponential backoff with jitter for the n-th attempt (from 1): about base, 2 x base,
    4 x base ... capped at max; the jitter keeps retries of one burst from moving together."""
    delay = min(max_seconds, base_seconds * 2 ** min(attempt - 1, 20))
    return int(delay * random.uniform(0.8, 1.2) * 1000)
