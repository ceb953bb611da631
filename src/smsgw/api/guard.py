"""Guessing and floods of credential checks: throttled without ever refusing a correct key.

Every key is checked (an HMAC, about a microsecond), and a correct one always passes. Only a
wrong key is counted, per source address and per partner id; past the limit of either, wrong
keys get HTTP 429 with Retry-After instead of 1006. A guesser gains nothing from that (a
128-bit key is not found by guessing at any rate), but a flood is named for what it is and a
partner's misconfigured client sees that it is being refused.

Hashes of earlier versions need one scrypt (tens of milliseconds) until their first successful
check replaces them. Those checks run on one thread, taken in turn per source address, so that
one address's flood of wrong keys delays another address's check by at most one scrypt per
address waiting; identical checks (one client's concurrent requests) share one scrypt.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

from ..domain.apikeys import verify_scrypt
from ..domain.codes import Code
from .bodies import BadRequest

FAILURES_PER_WINDOW = 10
WINDOW_SECONDS = 60.0
# Past this many tracked partner ids and addresses, the least recently failing are forgotten.
MAX_TRACKED = 100_000
# Earlier-version checks one address may have waiting before it gets 429 (memory, not CPU:
# the scheduling is fair whatever the queue lengths).
MAX_WAITING_SCRYPT_PER_ADDRESS = 64


class FailureThrottle:
    def __init__(self) -> None:
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def refuse(self, partner_id: str, address: str) -> BadRequest:
        """Counts a wrong key; the error to answer it with (1006, HTTP 429 past a limit)."""
        now = time.monotonic()
        retry_after = 0.0
        for subject in ("partner " + partner_id, "address " + address):
            recent = self._recent(subject, now)
            recent.append(now)
            if len(recent) > FAILURES_PER_WINDOW:
                retry_after = max(retry_after, recent[-FAILURES_PER_WINDOW] + WINDOW_SECONDS - now)
        if retry_after > 0:
            seconds = int(retry_after) + 1
            return BadRequest(Code.INVALID_CREDENTIALS, f"too many failed attempts, retry after {seconds} s", http_status=429, retry_after=seconds)
        return BadRequest(Code.INVALID_CREDENTIALS)

    def waiting(self, partner_id: str, address: str) -> int:
        """Seconds before another attempt for this partner id and address is heard (0: now).
        For passwords, which can be guessed, unlike keys: past the limit even the right one
        waits."""
        return self._waiting(("partner " + partner_id, "address " + address))

    def address_waiting(self, address: str) -> int:
        """Seconds before another attempt from this address is heard (0: now), whatever it
        names: guessing is slowed per address without letting anyone lock an account out."""
        return self._waiting(("address " + address,))

    def _waiting(self, subjects: tuple[str, ...]) -> int:
        now = time.monotonic()
        retry_after = 0.0
        for subject in subjects:
            recent = self._failures.get(subject)
            if recent is not None and len(recent) >= FAILURES_PER_WINDOW:
                retry_after = max(retry_after, recent[-FAILURES_PER_WINDOW] + WINDOW_SECONDS - now)
        return int(retry_after) + 1 if retry_after > 0 else 0

    def _recent(self, subject: str, now: float) -> collections.deque[float]:
        recent = self._failures.get(subject)
        if recent is None:
            if len(self._failures) >= MAX_TRACKED:
                self._failures.popitem(last=False)
            recent = self._failures[subject] = collections.deque(maxlen=FAILURES_PER_WINDOW + 1)
        else:
            self._failures.move_to_end(subject)
        horizon = now - WINDOW_SECONDS
        while recent and recent[0] < horizon:
            recent.popleft()
        return recent


class ScryptChecks:
    """Checks against hashes of earlier versions, one at a time, fairly among addresses."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="smsgw-scrypt")
        self._waiting: collections.OrderedDict[str, collections.deque[tuple[str, str, asyncio.Future[bool]]]] = collections.OrderedDict()
        self._shared: dict[tuple[str, bytes], asyncio.Future[bool]] = {}
        self._worker: asyncio.Task[None] | None = None

    async def verify(self, key: str, stored: str, address: str) -> bool:
        same = (stored, hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest())
        future = self._shared.get(same)
        if future is None:
            queue = self._waiting.get(address)
            if queue is None:
                queue = self._waiting[address] = collections.deque()
            if len(queue) >= MAX_WAITING_SCRYPT_PER_ADDRESS:
                raise BadRequest(Code.TRY_AGAIN_LATER, "too many credential checks from this address at once", http_status=429, retry_after=1)
            future = asyncio.get_running_loop().create_future()
            queue.append((key, stored, future))
            self._shared[same] = future
            future.add_done_callback(lambda _: self._shared.pop(same, None))
            if self._worker is None:
                self._worker = asyncio.create_task(self._work())
        # Shielded: a client that goes away does not cancel a check others are waiting for.
        return await asyncio.shield(future)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                address, queue = next(iter(self._waiting.items()))
                key, stored, future = queue.popleft()
                if queue:
                    self._waiting.move_to_end(address)
                else:
                    del self._waiting[address]
                try:
                    result = await loop.run_in_executor(self._executor, verify_scrypt, key, stored)
                except Exception as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            self._worker = None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
