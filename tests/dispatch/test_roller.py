"""The roller as the dispatcher side runs it: messages accepted while it runs are indexed and
counted within a few of its steps, two rollers on one store roll each message once, and a
stopped roller gives its lease up at once."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from smsgw.dispatch.roller import Roller
from smsgw.store import rollups
from smsgw.store import store as store_module
from smsgw.store.acceptance import NewMessage
from smsgw.store.schema import message_numbers, message_rollups, messages, roll_marks
from smsgw.store.store import Store, now_ms
from smsgw.store.urls import StoreUrl


def test_two_running_rollers_index_and_count_every_message_once(database_url, monkeypatch):
    # Every request a fresh block, so a range is complete once the requests holding its ids
    # have committed: 2 s here, for the in-process acceptances of this test.
    monkeypatch.setattr(store_module, "ID_BLOCK_SECONDS", 0.0)

    async def scenario():
        store = Store.open(StoreUrl.parse(database_url))
        await store.migrate()
        await store.create_partner("acme", "acme", "not a key", 10**9)
        rollers = [Roller(store, owner, interval=0.05, settle_ms=2000) for owner in ("one", "two")]
        try:
            for roller in rollers:
                await roller.start()
            accepted = 0
            for count in (1, 40, 7, 300):
                ids = await store.next_message_ids(count)
                now = now_ms()
                rows = [NewMessage(i, "acme", "SC", f"25471{i % 9:07d}", 1, "x", 0, 1, 100, None, 1, 1, now, now, ids[0], now + 1) for i in ids]
                await store.accept("acme", 100 * count, rows, ids[0], "t")
                accepted += count
                await asyncio.sleep(0.02)

            def counts(conn):
                numbers = conn.execute(select(func.count()).select_from(message_numbers)).scalar_one()
                rolled = conn.execute(select(func.coalesce(func.sum(message_rollups.c.messages), 0))).scalar_one()
                stored = conn.execute(select(func.count()).select_from(messages)).scalar_one()
                return int(numbers), int(rolled), int(stored)

            deadline = time.monotonic() + 30
            while (found := await store.read(counts))[:2] != (accepted, accepted):
                assert time.monotonic() < deadline, f"not rolled: {found}"
                await asyncio.sleep(0.05)
            for roller in rollers:
                await roller.stop()
            owner = await store.read(lambda conn: conn.execute(select(roll_marks.c.lease_owner)).scalar_one())
            return found, accepted, owner, await store.read(rollups.mark)
        finally:
            for roller in rollers:
                await roller.stop()
            await store.close()

    (numbers, rolled, stored), accepted, owner, mark = asyncio.run(scenario())
    assert numbers == rolled == stored == accepted
    assert owner is None
    assert mark > 0
