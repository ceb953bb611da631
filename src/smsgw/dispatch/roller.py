"""Runs the message roller (store/rollups.py) on the dispatcher side: a step every few seconds,
at once again while a backlog lasts (after a migration, or an outage)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..store import rollups
from ..store.errors import StoreUnavailable
from ..store.store import Store, now_ms

log = logging.getLogger(__name__)

ROLL_INTERVAL_SECONDS = 2.0
# Longer than a step takes: another dispatcher takes over this long after one died.
ROLL_LEASE_MS = 30_000


class Roller:
    def __init__(self, store: Store, owner: str, interval: float = ROLL_INTERVAL_SECONDS, settle_ms: int = rollups.SETTLE_MS) -> None:
        self.store = store
        self.owner = owner
        self.interval = interval
        self.settle_ms = settle_ms
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="roller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # otherwise the lease runs out by itself
            await self.store.write(rollups.release, self.owner)

    async def _run(self) -> None:
        while True:
            try:
                step = await self.store.write(rollups.roll_step, self.owner, now_ms(), ROLL_LEASE_MS, self.settle_ms)
            except StoreUnavailable as exc:
                log.warning("the roller waits for the store: %s", exc)
                step = None
            except Exception:
                log.exception("the roller's step failed; it goes on")
                step = None
            if step is None or not step.more:
                await asyncio.sleep(self.interval)
