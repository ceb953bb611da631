"""The SQLite writer's turns: every write waiting when a turn starts shares its transaction,
each answered only after the commit, each failing alone unless the commit itself fails.

SQLite only: PostgreSQL has no single writer (each write is a connection of its own)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from smsgw.store import queue
from smsgw.store.acceptance import NewMessage
from smsgw.store.database import SqliteDatabase
from smsgw.store.store import Store
from smsgw.store.urls import StoreUrl


class HeldWriter:
    """A write that holds the writer thread until released, so that the test can queue other
    writes behind it and know they all wait for the same next turn."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn) -> None:
        self.running.set()
        assert self.release.wait(30), "the test never released the writer"


async def _until(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.005)


async def _hold(db: SqliteDatabase) -> tuple[HeldWriter, asyncio.Task]:
    held = HeldWriter()
    task = asyncio.create_task(db.write(held))
    await _until(held.running.is_set, "the held write runs")
    return held, task


def _visible_elsewhere(path: Path, sql: str) -> int:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as other:
        return other.execute(sql).fetchone()[0]


def _messages(partner_id: str, ids: list[int], now: int) -> list[tuple]:
    return [
        NewMessage(mid, partner_id, "SC1", f"2547{i:08d}", 1, "hello", 0, 1, 1, None, 1, 1, now, now, ids[0], now + 86_400_000)
        for i, mid in enumerate(ids)
    ]


async def test_a_dispatcher_write_queued_behind_acceptance_shares_its_commit(tmp_path):
    path = tmp_path / "smsgw.db"
    store = Store.open(StoreUrl.parse(f"sqlite:///{path}"))
    try:
        await store.migrate()
        await store.create_partner("p1", "p1", (await store.api_key_hasher(None)).hash("p1-key-0123456789abcdef"), 10_000)
        now = int(time.time() * 1000)
        ids = await store.next_message_ids(10)
        await store.accept("p1", 10, _messages("p1", ids[:5], now), ids[0], "first")
        db = store.db
        assert isinstance(db, SqliteDatabase)

        held, held_task = await _hold(db)
        turns = db.write_turns
        acceptance = asyncio.create_task(store.accept("p1", 5, _messages("p1", ids[5:], now), ids[5], "second"))
        await _until(lambda: db.writes_waiting == 1, "the acceptance group is queued")

        def claim(conn):
            # Runs after the acceptance group in the same transaction: it sees the group's
            # rows, which no other connection sees yet.
            claimed = queue.claim_due(conn, "dispatcher", now, 100, 60_000, None)
            return len(claimed), _visible_elsewhere(path, "SELECT count(*) FROM messages")

        claiming = asyncio.create_task(store.write(claim))
        await _until(lambda: db.writes_waiting == 2, "the claim is queued")
        held.release.set()
        await held_task
        await acceptance
        claimed, committed_when_claimed = await claiming
        assert claimed == 10
        assert committed_when_claimed == 5  # the acceptance group was not committed before the claim ran
        assert db.write_turns == turns + 1  # one turn, one commit, for both
        assert _visible_elsewhere(path, "SELECT count(*) FROM messages WHERE lease_owner = 'dispatcher'") == 10
    finally:
        await store.close()


@pytest.fixture
async def db(tmp_path):
    database = SqliteDatabase(StoreUrl.parse(f"sqlite:///{tmp_path / 'w.db'}"), synchronous="FULL", lock_timeout_ms=1_000)

    def schema(conn):
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id))")
        conn.exec_driver_sql("INSERT INTO parent (id) VALUES (1)")

    await database.write(schema)
    yield database
    await database.close()


def insert_child(child_id: int):
    def write(conn) -> int:
        conn.execute(text("INSERT INTO child (id, parent_id) VALUES (:id, 1)"), {"id": child_id})
        return child_id

    return write


def insert_orphan_at_commit(conn) -> None:
    """Passes its own statements and fails the commit: a deferred foreign key is checked there."""
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    conn.execute(text("INSERT INTO child (id, parent_id) VALUES (99, 42)"))


def refused(conn) -> None:
    insert_child(1)(conn)
    conn.execute(text("INSERT INTO child (id, parent_id) VALUES (1, 1)"))  # the same id again


async def _children(db: SqliteDatabase) -> list[int]:
    return await db.read(lambda conn: [r[0] for r in conn.execute(text("SELECT id FROM child ORDER BY id"))])


async def _turn(db: SqliteDatabase, writes) -> list[object]:
    """Runs `writes` in one turn of the writer: all are queued while it is held."""
    held, held_task = await _hold(db)
    tasks = [asyncio.create_task(db.write(write)) for write in writes]
    await _until(lambda: db.writes_waiting == len(writes), "every write is queued")
    turns = db.write_turns
    held.release.set()
    await held_task
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert db.write_turns == turns + 1
    return [type(a).__name__ if isinstance(a, BaseException) else a for a in answers]


@pytest.mark.parametrize(
    "writes,answers,children",
    [
        ([insert_child(2), insert_child(3)], [2, 3], [2, 3]),
        ([insert_child(2), refused, insert_child(3)], [2, "IntegrityError", 3], [2, 3]),
        ([refused, insert_child(2)], ["IntegrityError", 2], [2]),
        ([insert_child(2), insert_orphan_at_commit, insert_child(3)], ["IntegrityError"] * 3, []),
    ],
    ids=["all-committed", "one-refused-rolls-back-alone", "first-refused", "failed-commit-fails-the-whole-turn"],
)
async def test_whose_failure_is_whose_in_a_shared_turn(db, writes, answers, children):
    assert await _turn(db, writes) == answers
    assert await _children(db) == children
    # The writer goes on: the next turn is a turn of its own.
    assert await db.write(insert_child(7)) == 7


async def test_a_failed_commit_fails_only_its_own_turn(db):
    held, held_task = await _hold(db)
    doomed = asyncio.create_task(db.write(insert_orphan_at_commit))
    await _until(lambda: db.writes_waiting == 1, "the doomed write is queued")
    held.release.set()
    await held_task
    with pytest.raises(IntegrityError):
        await doomed
    assert await db.write(insert_child(5)) == 5
    assert await _children(db) == [5]


async def test_a_write_given_up_before_its_turn_is_not_run(db):
    held, held_task = await _hold(db)
    abandoned = asyncio.create_task(db.write(insert_child(2)))
    kept = asyncio.create_task(db.write(insert_child(3)))
    await _until(lambda: db.writes_waiting == 2, "both writes are queued")
    abandoned.cancel()
    # Its caller is gone before the turn starts (the cancellation reaches the writer's queue
    # with the task's end).
    await asyncio.wait([abandoned])
    held.release.set()
    await held_task
    assert await kept == 3
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert await _children(db) == [3]


async def test_closing_writes_what_is_queued(tmp_path):
    path = tmp_path / "w.db"
    database = SqliteDatabase(StoreUrl.parse(f"sqlite:///{path}"), synchronous="FULL", lock_timeout_ms=1_000)
    await database.write(lambda conn: conn.exec_driver_sql("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER)"))
    held, held_task = await _hold(database)
    queued = [asyncio.create_task(database.write(insert_child(n))) for n in (1, 2)]
    await _until(lambda: database.writes_waiting == 2, "both writes are queued")
    closing = asyncio.create_task(database.close())
    await asyncio.sleep(0.05)
    held.release.set()
    await closing
    await held_task
    assert [await task for task in queued] == [1, 2]
    assert _visible_elsewhere(path, "SELECT count(*) FROM child") == 2
