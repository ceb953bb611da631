"""Group commit: what arrives while one transaction is being written goes into the next.

A durable commit costs the same for one request as for fifty (SQLite has one writer and one
fsync per commit), so requests that arrive while a transaction is being written wait and are
written together in the next one. The writer of a group returns one result per item, in order:
a value, or the exception of that item alone; an exception raised by the writer itself (the
commit failed, the store went away) is the answer of every item of that group, and of no other.
No item is answered before the transaction that holds it has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
GroupWriter = Callable[[list[Item]], Awaitable[Sequence["Result | BaseException"]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(self, write: GroupWriter, *, max_weight: int) -> None:
        self._write = write
        # A group stops growing at this total weight (rows, say), so that one transaction stays
        # short enough not to hold everyone else's answer; a heavier single item goes alone.
        self._max_weight = max_weight
        self._waiting: list[tuple[Item, int, asyncio.Future]] = []
        self._writing = False
        self._drainer: asyncio.Task[None] | None = None
        self.groups = 0  # transactions written
        self.items = 0  # items they held

    async def submit(self, item: Item, weight: int = 1) -> Result:
        """The result of `item`, once the transaction that holds it has finished."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, weight, future))
        if not self._writing:
            self._writing = True
            # Held: the loop keeps only a weak reference to a task.
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group = self._next_group()
                self.groups += 1
                self.items += len(group)
                try:
                    results = await self._write([item for item, _, _ in group])
                except BaseException as exc:
                    for _, _, future in group:
                        if not future.done():
                            if isinstance(exc, Exception):
                                future.set_exception(exc)
                            else:
                                future.cancel()
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, _, future), result in zip(group, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._writing = False
            # Whatever is still waiting (the loop is going away) is not written: say so.
            for _, _, future in self._waiting:
                if not future.done():
                    future.set_exception(RuntimeError("the group writer stopped"))
            self._waiting.clear()

    def _next_group(self) -> list[tuple[Item, int, asyncio.Future]]:
        total = 0
        taken = 0
        for _, weight, _ in self._waiting:
            if taken and total + weight > self._max_weight:
                break
            total += weight
            taken += 1
        group = self._waiting[:taken]
        del self._waiting[:taken]
        return group
