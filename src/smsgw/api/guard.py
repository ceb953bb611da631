"""Keeping credential checks from becoming a way to burn the gateway's CPU.

A key check that misses the memory of verified keys costs one scrypt (tens of milliseconds,
on purpose). Two limits keep that affordable: at most a few failed checks per partner id per
minute (then HTTP 429 with Retry-After, before any scrypt), and one dedicated thread with a
short queue for all scrypt work (a flood waits its turn or gets 429, and never takes the
threads the store and the event loop need).
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from ..domain.codes import Code
from .bodies import BadRequest

T = TypeVar("T")

FAILURES_PER_WINDOW = 10
WINDOW_SECONDS = 60.0
MAX_QUEUED_CHECKS = 32
_MAX_TRACKED_IDS = 100_000


class CredentialGuard:
    def __init__(self) -> None:
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="smsgw-scrypt")
        self._queued = 0

    def check_allowed(self, partner_id: str) -> None:
        """BadRequest(1006, HTTP 429) if this partner id failed too often of late."""
        recent = self._recent(partner_id)
        if recent is not None and len(recent) >= FAILURES_PER_WINDOW:
            retry_after = max(1, int(recent[0] + WINDOW_SECONDS - time.monotonic()) + 1)
            raise BadRequest(Code.INVALID_CREDENTIALS, f"too many failed attempts, retry after {retry_after} s", http_status=429, retry_after=retry_after)

    def record_failure(self, partner_id: str) -> None:
        recent = self._recent(partner_id)
        if recent is None:
            if len(self._failures) >= _MAX_TRACKED_IDS:
                self._failures.popitem(last=False)
            recent = self._failures[partner_id] = collections.deque()
        recent.append(time.monotonic())
        self._failures.move_to_end(partner_id)

    def _recent(self, partner_id: str) -> collections.deque[float] | None:
        recent = self._failures.get(partner_id)
        if recent is None:
            return None
        horizon = time.monotonic() - WINDOW_SECONDS
        while recent and recent[0] < horizon:
            recent.popleft()
        return recent

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Runs scrypt work on the dedicated thread; 429 when too much is already waiting."""
        if self._queued >= MAX_QUEUED_CHECKS:
            raise BadRequest(Code.TRY_AGAIN_LATER, "too many credential checks at once", http_status=429, retry_after=1)
        self._queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._queued -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
