"""The TPS limit of one SMPP connector: a token bucket that backs off while the SMSC throttles.

Pure bookkeeping on a clock (`reserve` says how long a submit waits), so that it can be tested
without sleeping; `acquire` is the one place that sleeps.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable


class RateLimiter:
    """Token bucket without burst (submits are spaced 1/rate apart), shared by all callers.

    `slow_down` (on ESME_RTHROTTLED / ESME_RMSGQFUL) halves the current rate, at most once per
    `hold` seconds so that a window full of throttled answers counts as one signal. Without a
    configured limit it halves the rate at which submits were just going out (over the last
    second, or since the first of them if that is shorter: a burst after a quiet spell must
    not look like a trickle, or the limit would collapse). Each `hold` without throttling
    raises the rate by a quarter, up to the configured one; without a configured limit the
    limit is lifted once it is twice what the traffic actually uses.
    """

    MIN_RATE = 1.0
    # Shortest span a rate is measured over: a handful of back-to-back submits is not a
    # measurement of thousands per second.
    MIN_SPAN = 0.05

    def __init__(self, tps: float, hold: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.configured = float(tps)
        self.rate = float(tps)  # 0: unlimited
        self.hold = hold
        self.clock = clock
        self._next = 0.0
        self._last_slow_down = -math.inf
        self._last_change = -math.inf
        self._recent: collections.deque[float] = collections.deque()

    def sending_rate(self, now: float | None = None) -> float:
        """Submits per second over the last second (or since the first within it)."""
        now = self.clock() if now is None else now
        self._forget(now)
        if not self._recent:
            return 0.0
        return len(self._recent) / max(now - self._recent[0], self.MIN_SPAN)

    def reserve(self) -> float:
        """Takes the next turn; returns how many seconds to wait for it."""
        now = self.clock()
        self._forget(now)
        self._recent.append(now)
        if self.rate > 0 and (self.rate < self.configured or self.configured == 0):
            self._recover(now)
        if self.rate <= 0:
            return 0.0
        start = self._next if self._next > now else now
        self._next = start + 1.0 / self.rate
        return start - now

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    def slow_down(self) -> None:
        now = self.clock()
        if now - self._last_slow_down < self.hold:
            return
        self._last_slow_down = self._last_change = now
        base = self.rate if self.rate > 0 else self.sending_rate(now)
        self.rate = max(self.MIN_RATE, base / 2)

    def _recover(self, now: float) -> None:
        if now - self._last_change < self.hold:
            return
        self._last_change = now
        raised = self.rate * 1.25
        if self.configured > 0:
            self.rate = min(self.configured, raised)
        elif raised > 2 * max(self.sending_rate(now), self.MIN_RATE):
            self.rate = 0.0
        else:
            self.rate = raised

    def _forget(self, now: float) -> None:
        recent = self._recent
        horizon = now - 1.0
        while recent and recent[0] < horizon:
            recent.popleft()
