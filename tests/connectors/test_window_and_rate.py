"""The connector's window and TPS limiter, on their own: pure bookkeeping on a clock."""

from __future__ import annotations

import asyncio

import pytest

from smsgw.connectors.smpp.rate import RateLimiter
from smsgw.connectors.smpp.window import Window


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("size", "taken", "released", "in_use", "peak"),
    [(1, 1, 1, 0, 1), (4, 3, 1, 2, 3), (4, 4, 4, 0, 4), (8, 2, 0, 2, 2)],
    ids=["one-slot-round-trip", "partly-freed", "all-freed", "still-held"],
)
async def test_the_window_counts_slots_and_its_peak(size: int, taken: int, released: int, in_use: int, peak: int) -> None:
    window = Window(size)
    for _ in range(taken):
        await window.acquire()
    window.release(released)
    assert (window.in_use, window.peak) == (in_use, peak)


async def test_a_full_window_waits_for_a_released_slot() -> None:
    window = Window(2)
    await window.acquire()
    await window.acquire()
    third = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0.01)
    assert not third.done()
    window.release()
    await asyncio.wait_for(third, 1)
    assert (window.in_use, window.peak) == (2, 2)


@pytest.mark.parametrize(
    ("tps", "turns", "waits"),
    [(0, 3, [0.0, 0.0, 0.0]), (10, 3, [0.0, 0.1, 0.2]), (2, 2, [0.0, 0.5])],
    ids=["unlimited", "ten-per-second", "two-per-second"],
)
def test_turns_are_spaced_one_over_the_rate_apart(tps: float, turns: int, waits: list[float]) -> None:
    limiter = RateLimiter(tps, clock=Clock())
    assert [round(limiter.reserve(), 6) for _ in range(turns)] == waits


@pytest.mark.parametrize(
    ("tps", "signals", "gap", "rate"),
    [(100, 1, 0.0, 50.0), (100, 2, 0.5, 50.0), (100, 2, 1.0, 25.0), (1, 3, 1.0, 1.0)],
    ids=["halved", "twice-within-hold-counts-once", "twice-a-hold-apart", "never-below-one"],
)
def test_throttling_halves_the_rate_at_most_once_per_hold(tps: float, signals: int, gap: float, rate: float) -> None:
    clock = Clock()
    limiter = RateLimiter(tps, hold=1.0, clock=clock)
    for _ in range(signals):
        limiter.slow_down()
        clock.now += gap
    assert limiter.rate == rate


@pytest.mark.parametrize(
    ("quiet_holds", "rate"),
    [(0, 50.0), (1, 62.5), (2, 78.125), (3, 97.65625), (4, 100.0)],
    ids=["just-throttled", "one-hold", "two-holds", "three-holds", "back-to-configured"],
)
def test_the_rate_recovers_by_a_quarter_per_quiet_hold(quiet_holds: int, rate: float) -> None:
    clock = Clock()
    limiter = RateLimiter(100, hold=1.0, clock=clock)
    limiter.slow_down()
    for _ in range(quiet_holds):
        clock.now += 1.0
        limiter.reserve()
    assert limiter.rate == rate


def test_without_a_limit_throttling_halves_the_measured_rate_then_lifts_it() -> None:
    clock = Clock()
    limiter = RateLimiter(0, hold=1.0, clock=clock)
    for _ in range(40):  # 40 submits over 0.4 s: 100 per second
        limiter.reserve()
        clock.now += 0.01
    assert round(limiter.sending_rate(), 6) == 100.0
    limiter.slow_down()
    assert round(limiter.rate, 6) == 50.0
    clock.now += 5.0  # quiet: the traffic uses far less than the limit, which is lifted
    limiter.reserve()
    assert limiter.rate == 0.0
