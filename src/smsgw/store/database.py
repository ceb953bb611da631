"""Running transactions: one body of SQLAlchemy Core code, two ways to run it.

Every query of the store is a plain function `fn(conn: Connection, ...)` that runs inside one
transaction. How it runs depends on the database:

- SQLite (embedded): in a thread, on a synchronous pysqlite connection. Writes go through one
  writer thread, which is SQLite's own rule (one writer at a time) made explicit: writers of
  this process queue in order instead of sleeping in SQLite's busy handler, and a whole
  transaction costs one hop to that thread instead of one per statement.
- PostgreSQL (scale-out): on the event loop through asyncpg, with the same function run by
  `AsyncConnection.run_sync`.

A lookup (`lookup`) is a single indexed query of a small table, asked on every request (a
partner, a shortcode). On SQLite it runs on the caller's thread, on a connection of its own
outside any transaction: the hop to a reader thread costs ten times the query, and a WAL
reader never waits for a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import QueuePool

from .errors import CommitOutcomeUnknown
from .urls import StoreUrl

T = TypeVar("T")
Transaction = Callable[..., T]
_LOOKUP_BUSY_TIMEOUT_MS = 50


class SqliteDatabase:
    def __init__(self, url: StoreUrl, *, synchronous: str, lock_timeout_ms: int, readers: int = 4) -> None:
        self.engine = create_engine(
            url.sqlalchemy_url,
            poolclass=QueuePool,
            pool_size=readers + 2,  # the readers, the writer, the lookups
            max_overflow=readers,
            connect_args={"check_same_thread": False},
            hide_parameters=True,
        )
        _configure_sqlite(self.engine, synchronous, lock_timeout_ms)
        self.dialect: Dialect = self.engine.dialect
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="smsgw-sqlite-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="smsgw-sqlite-reader")
        self._lookups: Connection | None = None

    async def write(self, fn: Transaction[T], *args: Any) -> T:
        """Runs `fn(conn, *args)` in a write transaction (BEGIN IMMEDIATE: the write lock is
        taken up front, so a transaction that reads before writing never meets a stale
        snapshot)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._transaction, "BEGIN IMMEDIATE", fn, args)

    async def read(self, fn: Transaction[T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._transaction, "BEGIN", fn, args)

    async def lookup(self, fn: Transaction[T], *args: Any) -> T:
        """Runs `fn(conn, *args)`, one `Prepared` query (a single statement, consistent on its
        own), on this thread."""
        if self._lookups is None:
            self._lookups = self.engine.connect()
            # Never hold the event loop for long: a reader waits only in rare cases (WAL
            # recovery after a crash), and then the request is answered "try again".
            driver = self._lookups.connection.driver_connection
            assert driver is not None
            driver.execute(f"PRAGMA busy_timeout={_LOOKUP_BUSY_TIMEOUT_MS}")
        return fn(self._lookups, *args)

    def _transaction(self, begin: str, fn: Transaction[T], args: tuple[Any, ...]) -> T:
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin=begin)
            with conn.begin():
                return fn(conn, *args)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        # Let queued transactions finish: an accepted batch in the writer's queue must land.
        await loop.run_in_executor(None, self._writer.shutdown, True)
        await loop.run_in_executor(None, self._readers.shutdown, True)
        if self._lookups is not None:
            self._lookups.close()
        self.engine.dispose()


class PostgresDatabase:
    def __init__(self, url: StoreUrl, *, pool_size: int = 10, lock_timeout_ms: int = 10_000) -> None:
        self.engine = create_async_engine(
            url.sqlalchemy_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={
                "server_settings": {
                    "lock_timeout": str(int(lock_timeout_ms)),
                    "application_name": "smsgw",
                    # asyncpg prepares every statement; a generic plan made while a table was
                    # small (a fresh install) would keep scanning it whole once it is large.
                    "plan_cache_mode": "force_custom_plan",
                }
            },
        )
        self.dialect = self.engine.dialect

    async def write(self, fn: Transaction[T], *args: Any) -> T:
        async with self.engine.connect() as conn:
            await conn.begin()
            result = await conn.run_sync(fn, *args)
            try:
                await conn.commit()
            except Exception as exc:
                # The server may have committed before the connection broke.
                raise CommitOutcomeUnknown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
            return result

    async def read(self, fn: Transaction[T], *args: Any) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn, *args)

    lookup = read

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.engine.dispose()


Database = SqliteDatabase | PostgresDatabase


def _configure_sqlite(engine, synchronous: str, lock_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take transaction control from the driver so that BEGIN is ours (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
