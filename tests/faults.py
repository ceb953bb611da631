"""Real faults of the real store, on whichever database a test runs: another session holding
a lock, a trigger refusing rows, data the gateway cannot read."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator

import asyncpg

from smsgw.config import Settings

from .helpers import Operator


class _PostgresSession:
    """One asyncpg connection driven from synchronous test code (its own loop in a thread)."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn = self._run(asyncpg.connect(url.replace("postgresql://", "postgres://", 1)))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def execute(self, statement: str) -> None:
        self._run(self._conn.execute(statement))

    def close(self) -> None:
        self._run(self._conn.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@contextlib.contextmanager
def write_lock_held(settings: Settings, table: str = "partners") -> Iterator[None]:
    """Another session holds the lock the gateway needs, for as long as the block runs (on
    SQLite the whole database's, on PostgreSQL `table`'s)."""
    url = settings.database_url
    if url.is_sqlite:
        holder = sqlite3.connect(url.sqlite_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    session = _PostgresSession(url.raw)
    session.execute("BEGIN")
    session.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        session.execute("ROLLBACK")
        session.close()


def refuse_inserts(operator: Operator, table: str, column: str, value: str | None) -> None:
    """A trigger makes the database refuse rows of `table` whose `column` is `value` (None:
    every row), as a constraint of the operator's or a bug of ours would."""
    name = f"refuse_{table}"
    if operator.settings.database_url.is_sqlite:
        condition = f"WHEN NEW.{column} = '{value}'" if value else ""
        operator.sql(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} {condition} BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END")
        return
    test = f"NEW.{column} = '{value}'" if value else "TRUE"
    operator.sql(
        f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
        f"IF {test} THEN RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
    )
    operator.sql(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")


def refuse_messages_to(operator: Operator, msisdn: str | None) -> None:
    """The database refuses to store messages to `msisdn` (None: to anyone)."""
    refuse_inserts(operator, "messages", "msisdn", msisdn)


def make_partners_unreadable(operator: Operator) -> None:
    """Data the gateway cannot make sense of (a failure that is not the store being away)."""
    if operator.settings.database_url.is_sqlite:
        operator.sql("UPDATE partners SET balance = 'not a number' WHERE id = 'p1'")
    else:
        operator.sql("ALTER TABLE partners RENAME COLUMN balance TO balance_lost")


class LoopbackProxy:
    """A TCP proxy on loopback to `target_port`; subclasses say in `_serve` what each
    connection does on its way through (drop an answer, hold answers back...)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
