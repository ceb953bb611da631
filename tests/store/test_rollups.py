"""The message roller and what the console reads instead of indexes on messages: a request's
ids are one range (its charge entry finds its messages), the roller indexes and counts every
message exactly once (across id blocks of several processes, late commits, a kill mid-way),
and searches by number see the messages on both sides of its mark, of one partner only."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import func, select

from smsgw.store import rollups
from smsgw.store import store as store_module
from smsgw.store import web as web_store
from smsgw.store.acceptance import NewMessage
from smsgw.store.schema import id_blocks, message_numbers, message_rollups, messages
from smsgw.store.store import ID_BLOCK_SIZE, Store, now_ms
from smsgw.store.urls import StoreUrl

HOUR_MS = rollups.HOUR_MS
NETWORKS = (1, 2, 3)


@pytest.fixture(autouse=True)
def blocks_expire_at_once(monkeypatch):
    """Every request takes a fresh id block, as it would once ID_BLOCK_SECONDS have passed:
    with that, a range the roller read the counter for is complete at once (settle_ms=0)."""
    monkeypatch.setattr(store_module, "ID_BLOCK_SECONDS", 0.0)


async def _open(database_url: str, partners: tuple[str, ...] = ("acme", "rival")) -> Store:
    store = Store.open(StoreUrl.parse(database_url))
    await store.migrate()
    for partner_id in partners:
        await store.create_partner(partner_id, partner_id, "not a key", 10**9)
    return store


def _rows(partner_id: str, ids: list[int], created_at: int, number=lambda i: f"2547{i % 7:08d}") -> list[tuple]:
    return [
        NewMessage(
            mid,
            partner_id,
            "SC",
            number(mid),
            NETWORKS[mid % 3],
            "hello",
            0,
            1 + mid % 2,
            100,
            None,
            1,
            1,
            created_at,
            created_at,
            ids[0],
            created_at + HOUR_MS,
        )
        for mid in ids
    ]


async def _accept(store: Store, partner_id: str, count: int, created_at: int | None = None) -> list[int]:
    ids = await store.next_message_ids(count)
    rows = _rows(partner_id, ids, created_at if created_at is not None else now_ms())
    await store.accept(partner_id, 100 * count, rows, ids[0], "test")
    return ids


def _roll_all(conn, owner: str = "test", now: int | None = None, chunk: int = rollups.ROLL_CHUNK) -> int:
    """Steps until the settled range is rolled (no settling in a test store with nothing in flight)."""
    total = 0
    while True:
        step = rollups.roll_step(conn, owner, now if now is not None else now_ms(), 1000, settle_ms=0, chunk=chunk)
        assert step.held
        total += step.rolled
        if not step.more:
            return total


def _indexed_as_stored(conn) -> tuple[list, list, list, list]:
    """(numbers indexed, numbers of the messages below the mark, rollups, direct counts)."""
    mark = rollups.mark(conn)
    numbers = sorted(conn.execute(select(message_numbers.c.msisdn, message_numbers.c.partner_id, message_numbers.c.message_id)).all())
    stored = sorted(conn.execute(select(messages.c.msisdn, messages.c.partner_id, messages.c.id).where(messages.c.id < mark)).all())
    hour = messages.c.created_at // HOUR_MS * HOUR_MS
    direct = conn.execute(
        select(hour, messages.c.partner_id, messages.c.network_id, func.count(), func.sum(messages.c.parts), func.sum(messages.c.cost))
        .where(messages.c.id < mark)
        .group_by(hour, messages.c.partner_id, messages.c.network_id)
        .order_by(hour, messages.c.partner_id, messages.c.network_id)
    ).all()
    rolled = conn.execute(select(message_rollups).order_by(message_rollups.c.hour, message_rollups.c.partner_id, message_rollups.c.network_id)).all()
    return (
        numbers,
        stored,
        [tuple(int(v) if not isinstance(v, str) else v for v in r) for r in rolled],
        [tuple(int(v) if not isinstance(v, str) else v for v in r) for r in direct],
    )


def _assert_exact(conn) -> None:
    numbers, stored, rolled, direct = _indexed_as_stored(conn)
    assert [tuple(n) for n in numbers] == [tuple(s) for s in stored]
    assert rolled == direct


def test_a_requests_ids_are_one_range_even_when_its_block_runs_out_and_another_process_reserved_in_between(database_url, monkeypatch):
    monkeypatch.setattr(store_module, "ID_BLOCK_SECONDS", 3600.0)

    async def scenario():
        first, second = await _open(database_url), Store.open(StoreUrl.parse(database_url))
        try:
            start = await first.next_message_ids(ID_BLOCK_SIZE - 3)  # 3 ids left in first's block
            other = await second.next_message_ids(1)  # second's block follows first's
            ids = await first.next_message_ids(10)
            return start, other, ids
        finally:
            await first.close()
            await second.close()

    start, other, ids = asyncio.run(scenario())
    assert ids == list(range(ids[0], ids[0] + 10))
    assert not set(ids) & (set(start) | set(other))
    assert ids[0] > other[0]  # a block of its own, after second's


def test_a_block_is_used_no_longer_than_its_lifetime(database_url, monkeypatch):
    monkeypatch.setattr(store_module, "ID_BLOCK_SECONDS", 0.05)

    async def scenario():
        store = await _open(database_url)
        try:
            before = await store.next_message_ids(1)
            await asyncio.sleep(0.1)
            counter = await store.read(lambda conn: conn.execute(select(id_blocks.c.next_value)).scalar_one())
            after = await store.next_message_ids(1)
            return before, counter, after
        finally:
            await store.close()

    before, counter, after = asyncio.run(scenario())
    assert before[0] + 1 < counter  # the old block had ids left
    assert after[0] >= counter  # but the next id came from a fresh one


def test_a_partners_pages_follow_its_charges_and_hold_each_message_once(database_url):
    async def scenario():
        store, second = await _open(database_url), Store.open(StoreUrl.parse(database_url))
        try:
            acme = []
            acme += await _accept(store, "acme", 5)
            await _accept(store, "rival", 4)
            acme += await _accept(second, "acme", 3)  # another process: a block far above
            acme += await _accept(store, "acme", 1)  # back below it
            acme += await _accept(store, "acme", 7)
            pages, cursor = [], None
            while True:
                page, cursor = await store.read(web_store.partner_messages, "acme", 4, cursor)
                pages.append([(row.id, row.partner_id) for row in page])
                if cursor is None:
                    return acme, pages
        finally:
            await store.close()
            await second.close()

    acme, pages = asyncio.run(scenario())
    listed = [mid for page in pages for mid, _ in page]
    assert {partner for page in pages for _, partner in page} == {"acme"}
    assert sorted(listed) == sorted(acme)  # each once
    assert all(len(page) == 4 for page in pages[:-1])
    # newest charge first, each batch newest first: the last request's 7, then the one before...
    assert listed[:7] == sorted(acme[-7:], reverse=True)
    assert listed[7] == acme[-8]


def test_rollups_and_numbers_equal_the_messages_rolled_chunk_by_chunk(database_url):
    async def scenario():
        store = await _open(database_url)
        try:
            now = now_ms()
            for hours_ago, partner_id, count in [(30, "acme", 40), (2, "rival", 25), (2, "acme", 13), (0, "acme", 9)]:
                await _accept(store, partner_id, count, now - hours_ago * HOUR_MS)
            rolled = await store.write(_roll_all, "test", None, 7)
            await store.read(_assert_exact)
            await _accept(store, "rival", 11)
            again = await store.write(_roll_all, "test", None, 7)
            await store.read(_assert_exact)
            total = await store.read(lambda conn: conn.execute(select(func.count()).select_from(messages)).scalar_one())
            mark = await store.read(rollups.mark)
            highest = await store.read(lambda conn: conn.execute(select(func.max(messages.c.id))).scalar_one())
            return rolled, again, total, mark, highest
        finally:
            await store.close()

    rolled, again, total, mark, highest = asyncio.run(scenario())
    assert (rolled, again) == (87, 11)
    assert total == 98
    assert mark > highest  # every message is below the mark, indexed once


def test_the_roller_waits_for_a_range_to_settle_so_a_late_commit_below_newer_ids_is_not_missed(database_url):
    async def scenario():
        store, second = await _open(database_url), Store.open(StoreUrl.parse(database_url))
        try:
            late_ids = await store.next_message_ids(5)  # handed out, not committed yet
            early = await _accept(second, "rival", 5)  # a later block, committed first
            now = now_ms()
            settle = 60_000

            def step(conn, at):
                return rollups.roll_step(conn, "test", at, 1000, settle_ms=settle)

            first = await store.write(step, now)  # reads the counter, starts the settling
            await store.accept("acme", 500, _rows("acme", late_ids, now), late_ids[0], "late")
            early_step = await store.write(step, now + settle - 1)
            settled = await store.write(step, now + settle)
            await store.read(_assert_exact)
            numbers = await store.read(lambda conn: {r.message_id for r in conn.execute(select(message_numbers.c.message_id))})
            return first, early_step, settled, numbers, late_ids, early
        finally:
            await store.close()
            await second.close()

    first, early_step, settled, numbers, late_ids, early = asyncio.run(scenario())
    assert (first.rolled, early_step.rolled, settled.rolled) == (0, 0, 10)
    assert numbers == set(late_ids) | set(early)


def test_one_roller_at_a_time_and_another_takes_over_when_the_lease_runs_out(database_url):
    async def scenario():
        store = await _open(database_url)
        try:
            await _accept(store, "acme", 3)
            now = now_ms()
            first = await store.write(lambda conn: rollups.roll_step(conn, "one", now, 1000, settle_ms=0))
            refused = await store.write(lambda conn: rollups.roll_step(conn, "two", now + 999, 1000, settle_ms=0))
            taken = await store.write(lambda conn: rollups.roll_step(conn, "two", now + 1001, 1000, settle_ms=0))
            await store.write(rollups.release, "two")
            released = await store.write(lambda conn: rollups.roll_step(conn, "one", now + 1002, 1000, settle_ms=0))
            return first, refused, taken, released
        finally:
            await store.close()

    first, refused, taken, released = asyncio.run(scenario())
    assert (first.held, refused.held, taken.held, released.held) == (True, False, True, True)


ROLLING_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from smsgw.store import rollups
    from smsgw.store.store import Store, now_ms
    from smsgw.store.urls import StoreUrl

    async def main():
        store = Store.open(StoreUrl.parse(sys.argv[1]))
        while True:
            await store.write(lambda conn: rollups.roll_step(conn, "doomed", now_ms(), 500, settle_ms=0, chunk=int(sys.argv[2])))
            print("stepped", flush=True)

    asyncio.run(main())
    """
)


def test_a_roller_killed_mid_way_loses_nothing_and_its_successor_counts_nothing_twice(database_url):
    messages_stored = 30_000

    async def fill() -> int:
        store = await _open(database_url)
        try:
            for _ in range(messages_stored // 5000):
                await _accept(store, "acme", 2500)
                await _accept(store, "rival", 2500)
            return await store.read(rollups.mark)
        finally:
            await store.close()

    async def finish() -> tuple[int, int, int, int]:
        store = Store.open(StoreUrl.parse(database_url))
        try:
            killed_at = await store.read(rollups.mark)
            await asyncio.sleep(0.6)  # the dead roller's lease runs out
            finished = await store.write(_roll_all, "successor")
            await store.read(_assert_exact)
            highest = await store.read(lambda conn: conn.execute(select(func.max(messages.c.id))).scalar_one())
            return killed_at, finished, await store.read(rollups.mark), highest
        finally:
            await store.close()

    start = asyncio.run(fill())
    process = subprocess.Popen([sys.executable, "-c", ROLLING_PROCESS, database_url, "300"], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(5):  # a few steps committed, then the kill lands in the middle of the work
            assert process.stdout is not None and process.stdout.readline().startswith("stepped")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        process.kill()
        if process.stdout is not None:
            process.stdout.close()
    killed_at, finished, end, highest = asyncio.run(finish())
    assert start < killed_at < highest  # it was stopped part way
    assert 0 < finished < messages_stored
    assert end > highest


@pytest.mark.parametrize("partner_id", ["acme", None], ids=["portal", "console"])
def test_a_search_by_number_finds_messages_below_and_above_the_mark_and_never_another_partners(database_url, partner_id):
    number = "254712000001"

    async def scenario():
        store = await _open(database_url)
        try:
            now = now_ms()

            async def send(who: str, count: int) -> list[int]:
                ids = await store.next_message_ids(count)
                await store.accept(who, 100 * count, _rows(who, ids, now, lambda _: number), ids[0], "t")
                return ids

            old_acme, old_rival = await send("acme", 3), await send("rival", 2)
            await store.write(_roll_all)
            new_acme, new_rival = await send("acme", 2), await send("rival", 1)
            mark = await store.read(rollups.mark)
            found = await store.read(web_store.find_messages, partner_id, None, number, 200)
            other = await store.read(web_store.find_messages, partner_id, None, "254712000002", 200)
            return old_acme, old_rival, new_acme, new_rival, mark, [(r.id, r.partner_id) for r in found], other
        finally:
            await store.close()

    old_acme, old_rival, new_acme, new_rival, mark, found, other = asyncio.run(scenario())
    assert max(old_acme + old_rival) < mark <= min(new_acme + new_rival)
    wanted = old_acme + new_acme if partner_id else old_acme + old_rival + new_acme + new_rival
    assert [mid for mid, _ in found] == sorted(wanted, reverse=True)
    if partner_id:
        assert {who for _, who in found} == {"acme"}
    assert other == []
