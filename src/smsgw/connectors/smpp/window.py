"""The submit window of one SMPP connector: at most `size` submit_sm awaiting their response.

A slot is taken before a submit_sm goes out and given back when its response arrives, or,
for a submit_sm given up on (an orphan), when its late response arrives or its connection
ends; `client_session` says which.
"""

from __future__ import annotations

import asyncio


class Window:
    """At most `size` submit_sm awaiting their response."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self.peak = 0
        self._free = asyncio.Semaphore(size)

    async def acquire(self) -> None:
        await self._free.acquire()
        self.in_use += 1
        if self.in_use > self.peak:
            self.peak = self.in_use

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self.in_use -= 1
            self._free.release()
