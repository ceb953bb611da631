"""Running transactions: one body of SQLAlchemy Core code, two ways to run it.

Every query of the store is a plain function `fn(conn: Connection, ...)` that runs inside one
transaction. How it runs depends on the database:

- SQLite (embedded): in a thread, on a synchronous pysqlite connection. Writes go through one
  writer thread, which is SQLite's own rule (one writer at a time) made explicit: writers of
  this process queue in order instead of sleeping in SQLite's busy handler, and a whole
  transaction costs one hop to that thread instead of one per statement. The writer takes
  every write that is waiting when it starts a turn into one transaction, each in a savepoint
  of its own (`_SqliteWriter`): with acceptance and delivery in one process, the dispatcher's
  claims and outcomes ride in the commit of the acceptance group they queued behind instead
  of waiting for it and then paying a commit of their own, so neither side waits more than
  one turn for the other.
- PostgreSQL (scale-out): on the event loop through asyncpg, with the same function run by
  `AsyncConnection.run_sync`.

A lookup (`lookup`) is a single indexed query of a small table, asked on every request (a
partner, a shortcode). On SQLite it runs on the caller's thread, on a connection of its own
outside any transaction: the hop to a reader thread costs ten times the query, and a WAL
reader never waits for a writer.

`is_unavailable` tells an error that means "the database is not there right now" from a bug or
bad data, for both drivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import QueuePool

from .errors import CommitOutcomeUnknown
from .urls import StoreUrl

T = TypeVar("T")
Transaction = Callable[..., T]
_LOOKUP_BUSY_TIMEOUT_MS = 50
# A turn stops growing here so that one commit stays short; the writes queued behind it go
# into the next turn, in order.
_WRITES_PER_TURN = 64


# Errors that mean "the database is not there right now", as opposed to a bug or bad data.
_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout, OSError, asyncio.TimeoutError)
# PostgreSQL reports the same through SQLSTATE: connection exceptions, insufficient resources,
# shutdown or not yet accepting connections, a lock not obtained within lock_timeout, a
# cancelled statement, and the transient serialization and deadlock failures.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "55P03", "57014", "40001", "40P01")


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # Through SQLAlchemy the driver's error is `orig`; the COPY path meets asyncpg's directly.
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(driver_error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
        return True
    return isinstance(exc, _UNAVAILABLE) or isinstance(driver_error, asyncpg.InterfaceError)


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
        self._writer = _SqliteWriter(self.engine)
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="smsgw-sqlite-reader")
        self._lookups: Connection | None = None

    async def write(self, fn: Transaction[T], *args: Any) -> T:
        """Runs `fn(conn, *args)` in a write transaction (BEGIN IMMEDIATE: the write lock is
        taken up front, so a transaction that reads before writing never meets a stale
        snapshot)."""
        return await asyncio.wrap_future(self._writer.submit(fn, args))

    @property
    def write_turns(self) -> int:
        """Write transactions committed or rolled back so far (each holds one or more writes)."""
        return self._writer.turns

    @property
    def writes_waiting(self) -> int:
        """Writes queued for a turn that has not started yet."""
        return self._writer.waiting

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
        await loop.run_in_executor(None, self._writer.shutdown)
        await loop.run_in_executor(None, self._readers.shutdown, True)
        if self._lookups is not None:
            self._lookups.close()
        self.engine.dispose()


@dataclass
class _Write:
    fn: Transaction[Any]
    args: tuple[Any, ...]
    future: Future[Any]


class _SqliteWriter:
    """The one writer thread. Each turn is one transaction (BEGIN IMMEDIATE) holding every
    write waiting at its start, up to `_WRITES_PER_TURN`, run in the order they came. Alone, a
    write runs as its own transaction. Shared, each runs in a savepoint: one that raises is
    rolled back to its savepoint and gets its own exception, the others go on. Every write of
    a turn is answered only after the commit, and a commit that fails (or a rollback to a
    savepoint that fails, which leaves the transaction in doubt) is the answer of every write
    of that turn and of no other."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self.turns = 0
        self._thread = threading.Thread(target=self._run, name="smsgw-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Transaction[T], args: tuple[Any, ...]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put(_Write(fn, args, future))
        return future

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def shutdown(self) -> None:
        """Writes what is queued, then stops the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            turn = [first]
            while len(turn) < _WRITES_PER_TURN:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                turn.append(more)
            # A write whose caller gave up before its turn is not run (as an executor's).
            turn = [write for write in turn if write.future.set_running_or_notify_cancel()]
            if turn:
                self.turns += 1
                self._write_turn(turn)

    def _write_turn(self, turn: list[_Write]) -> None:
        answers: list[tuple[_Write, Any, BaseException | None]] = []
        try:
            with self._engine.connect() as conn:
                conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                with conn.begin():
                    if len(turn) == 1:
                        answers.append((turn[0], turn[0].fn(conn, *turn[0].args), None))
                    else:
                        for write in turn:
                            answers.append(_in_savepoint(conn, write))
        except BaseException as exc:
            # The thread goes on whatever was raised: a dead writer would leave every later
            # write waiting forever.
            for write in turn:
                write.future.set_exception(exc)
            return
        for write, result, error in answers:
            if error is None:
                write.future.set_result(result)
            else:
                write.future.set_exception(error)


def _in_savepoint(conn: Connection, write: _Write) -> tuple[_Write, Any, BaseException | None]:
    conn.exec_driver_sql("SAVEPOINT smsgw_write")
    try:
        result = write.fn(conn, *write.args)
    except Exception as exc:
        # Raises (failing the whole turn) if the savepoint cannot be rolled back: SQLite may
        # have rolled back the transaction itself (a full disk, an I/O error).
        conn.exec_driver_sql("ROLLBACK TO smsgw_write")
        conn.exec_driver_sql("RELEASE smsgw_write")
        return write, None, exc
    conn.exec_driver_sql("RELEASE smsgw_write")
    return write, result, None


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
