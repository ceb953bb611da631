"""Group commit of waiting items: who shares a transaction, and whose failure is whose."""

from __future__ import annotations

import asyncio

import pytest

from smsgw.store.grouping import GroupCommit


class Refused(Exception):
    pass


class Recorder:
    """A group writer that records each group, holds each write until released, and answers
    per item as told: an item named "bad" fails alone, a group holding "fatal" fails whole."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.finished: list[list[str]] = []

    async def write(self, items: list[str]) -> list[str | BaseException]:
        self.groups.append(items)
        await self.release.wait()
        self.finished.append(items)
        if "fatal" in items:
            raise RuntimeError("commit failed")
        return [Refused(item) if item == "bad" else item.upper() for item in items]


async def _outcomes(grouping: GroupCommit, items: list[str], weights: list[int] | None = None) -> list[str]:
    answers = await asyncio.gather(*[grouping.submit(item, w) for item, w in zip(items, weights or [1] * len(items))], return_exceptions=True)
    return [f"{type(a).__name__}" if isinstance(a, BaseException) else a for a in answers]


@pytest.mark.parametrize(
    "items,outcomes",
    [
        (["a", "b", "c"], ["A", "B", "C"]),
        (["a", "bad", "c"], ["A", "Refused", "C"]),
        (["bad", "bad", "c"], ["Refused", "Refused", "C"]),
    ],
    ids=["all-good", "one-refused-in-the-middle", "two-refused"],
)
async def test_an_item_refused_by_the_writer_fails_alone(items: list[str], outcomes: list[str]):
    recorder = Recorder()
    grouping = GroupCommit(recorder.write, max_weight=100)
    assert await _outcomes(grouping, items) == outcomes
    assert recorder.groups == [items]  # submitted in one loop tick: one group
    assert (grouping.groups, grouping.items) == (1, len(items))


async def test_items_arriving_during_a_write_share_the_next_one():
    recorder = Recorder()
    recorder.release.clear()
    grouping = GroupCommit(recorder.write, max_weight=100)
    first = asyncio.create_task(grouping.submit("first"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.create_task(grouping.submit(name)) for name in ("x", "y", "z")]
    await asyncio.sleep(0.01)
    # No answer before the write that holds the item is finished.
    assert not first.done() and not any(t.done() for t in later)
    assert recorder.groups == [["first"]]
    recorder.release.set()
    assert await first == "FIRST"
    assert [await t for t in later] == ["X", "Y", "Z"]
    assert recorder.groups == [["first"], ["x", "y", "z"]]
    assert (grouping.groups, grouping.items) == (2, 4)


async def test_a_failed_write_fails_exactly_the_items_it_held():
    recorder = Recorder()
    recorder.release.clear()
    grouping = GroupCommit(recorder.write, max_weight=100)
    before = asyncio.create_task(grouping.submit("before"))
    await asyncio.sleep(0.01)
    doomed = [asyncio.create_task(grouping.submit(name)) for name in ("a", "fatal", "b")]
    await asyncio.sleep(0.01)
    recorder.release.set()
    assert await before == "BEFORE"
    for task in doomed:
        with pytest.raises(RuntimeError, match="commit failed"):
            await task
    # The writer goes on with the next group.
    assert await grouping.submit("after") == "AFTER"
    assert recorder.groups == [["before"], ["a", "fatal", "b"], ["after"]]


@pytest.mark.parametrize(
    "weights,groups",
    [
        ([1, 1, 1, 1], [["i0", "i1", "i2", "i3"]]),
        ([6, 5, 1], [["i0"], ["i1", "i2"]]),
        ([20, 1], [["i0"], ["i1"]]),
        ([1, 20, 1], [["i0"], ["i1"], ["i2"]]),
    ],
    ids=["light-items-together", "stops-at-the-weight", "a-heavy-item-goes-alone", "heavy-in-the-middle"],
)
async def test_a_group_stops_growing_at_its_weight(weights: list[int], groups: list[list[str]]):
    recorder = Recorder()
    grouping = GroupCommit(recorder.write, max_weight=10)
    items = [f"i{n}" for n in range(len(weights))]
    assert await _outcomes(grouping, items, weights) == [i.upper() for i in items]
    assert recorder.groups == groups
