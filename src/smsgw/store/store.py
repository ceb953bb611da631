"""The one interface through which the gateway reads and writes its database.

Every query lives here (and in the dispatcher's queue module next to it), written in
SQLAlchemy Core that SQLite and PostgreSQL both run. Where the two differ (locking,
pragmas), the difference stays inside this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, NamedTuple, Sequence

from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .errors import AlreadyExists, IdempotencyConflict, NotFound, SchemaOutOfDate, StoreUnavailable
from .migrate import current_revision, head_revision, upgrade_to_head
from .schema import id_blocks, idempotency_keys, ledger, messages, partners, shortcodes
from .urls import StoreUrl

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
ID_BLOCK_SIZE = 100_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    api_key_hash: str
    balance: int
    status: str
    callback_url: str | None
    callback_secret: str | None

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class Shortcode:
    shortcode: str
    partner_id: str
    networks: frozenset[int] | None  # None: enabled on every network


class NewMessage(NamedTuple):
    """One accepted message as the acceptance path hands it to `Store.accept`; the field
    order is the column order of the insert, so rows go to the driver as they are."""

    id: int
    partner_id: str
    shortcode: str
    msisdn: str
    network_id: int
    text: str
    data_coding: int
    parts: int
    cost: int
    clientsmsid: str | None
    priority: int
    state: int
    due_at: int
    created_at: int


_MESSAGE_INSERT_COLUMNS = (*NewMessage._fields, "ledger_id")


@dataclass(frozen=True)
class Accepted:
    ledger_id: int


@dataclass(frozen=True)
class LowCredit:
    balance: int


@dataclass(frozen=True)
class StoredAnswer:
    body_sha256: str
    response: bytes


@dataclass(frozen=True)
class MessageView:
    id: int
    partner_id: str
    msisdn: str
    network_id: int
    state: int
    created_at: int
    submitted_at: int | None
    done_at: int | None
    clientsmsid: str | None


# Errors that mean "the database is not there right now", as opposed to a bug or bad data.
_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout, OSError, asyncio.TimeoutError)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _UNAVAILABLE)


@contextlib.asynccontextmanager
async def _availability() -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        if _is_unavailable(exc):
            raise StoreUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        raise


class Store:
    def __init__(self, engine: AsyncEngine, url: StoreUrl) -> None:
        self.engine = engine
        self.url = url
        self.is_sqlite = url.is_sqlite
        # SQLite has one writer at a time; queueing writers of this process here instead of
        # in SQLite's busy handler keeps them in order and off the sleep-and-retry loop.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._id_lock = asyncio.Lock()
        self._id_next = 0
        self._id_end = 0
        # The hot insert is compiled once for this database and sent with plain tuples:
        # per-row dictionaries and bind processing cost more than the insert itself.
        compiled = insert(messages).compile(dialect=engine.dialect, column_keys=list(_MESSAGE_INSERT_COLUMNS))
        self._message_insert_sql = str(compiled)
        order = compiled.positiontup or []
        if list(order) != list(_MESSAGE_INSERT_COLUMNS):
            raise RuntimeError(f"unexpected parameter order for the message insert: {order}")

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(cls, url: StoreUrl, *, sqlite_synchronous: str = "FULL", busy_timeout_ms: int = 10_000, pool_size: int = 10) -> "Store":
        if url.is_sqlite:
            engine = create_async_engine(url.sqlalchemy_url, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)
            _configure_sqlite(engine, sqlite_synchronous, busy_timeout_ms)
        else:
            engine = create_async_engine(url.sqlalchemy_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, hide_parameters=True)
        return cls(engine, url)

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self) -> None:
        """Brings the schema to the newest revision (Alembic)."""
        async with _availability():
            async with self.engine.begin() as conn:
                await conn.run_sync(upgrade_to_head)

    async def prepare(self) -> None:
        """Makes the store usable by this version: the embedded SQLite store migrates itself;
        a shared PostgreSQL store is migrated only by `smsgw migrate`, so that an operator
        decides when, and this raises SchemaOutOfDate if that has not happened."""
        if self.is_sqlite:
            await self.migrate()
            return
        async with _availability():
            async with self.engine.connect() as conn:
                current = await conn.run_sync(current_revision)
        if current != head_revision():
            raise SchemaOutOfDate(f"the database schema is at {current or 'nothing'}, this version needs {head_revision()}: run `smsgw migrate`")

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: serialised per process on SQLite and begun IMMEDIATE there,
        so that a transaction that reads before it writes cannot meet a stale snapshot."""
        async with _availability():
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    yield conn
                return
            async with self._write_lock:
                async with self.engine.connect() as conn:
                    conn = await conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                    async with conn.begin():
                        yield conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with _availability():
            async with self.engine.connect() as conn:
                yield conn

    # -- partners and shortcodes -------------------------------------------------------------

    async def count_partners(self) -> int:
        async with self._read() as conn:
            return (await conn.execute(select(func.count()).select_from(partners))).scalar_one()

    async def create_partner(self, partner_id: str, name: str, api_key_hash: str, credits: int) -> None:
        now = now_ms()
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(partners).values(
                        id=partner_id, name=name, api_key_hash=api_key_hash, balance=credits, status="active", created_at=now
                    )
                )
                if credits:
                    await conn.execute(
                        insert(ledger).values(
                            partner_id=partner_id, amount=credits, balance_after=credits, kind="topup", reference="initial credit", created_at=now
                        )
                    )
        except IntegrityError:
            raise AlreadyExists(f"partner {partner_id} already exists") from None

    async def get_partner(self, partner_id: str) -> Partner | None:
        async with self._read() as conn:
            row = (await conn.execute(select(partners).where(partners.c.id == partner_id))).first()
        if row is None:
            return None
        return Partner(row.id, row.name, row.api_key_hash, row.balance, row.status, row.callback_url, row.callback_secret)

    async def top_up(self, partner_id: str, amount: int, reference: str) -> int:
        """Adds `amount` (hundredths, may be negative for a correction that keeps the balance
        at or above zero) and returns the new balance."""
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(partners)
                    .where(partners.c.id == partner_id, partners.c.balance + amount >= 0)
                    .values(balance=partners.c.balance + amount)
                    .returning(partners.c.balance)
                )
            ).first()
            if row is None:
                exists = (await conn.execute(select(partners.c.balance).where(partners.c.id == partner_id))).first()
                if exists is None:
                    raise NotFound(f"partner {partner_id} does not exist")
                raise ValueError(f"a change of {amount} would take the balance {exists.balance} below zero")
            await conn.execute(
                insert(ledger).values(
                    partner_id=partner_id, amount=amount, balance_after=row.balance, kind="topup", reference=reference, created_at=now_ms()
                )
            )
            return row.balance

    async def set_partner_status(self, partner_id: str, status: str) -> None:
        async with self._write() as conn:
            result = await conn.execute(update(partners).where(partners.c.id == partner_id).values(status=status))
            if result.rowcount == 0:
                raise NotFound(f"partner {partner_id} does not exist")

    async def set_api_key_hash(self, partner_id: str, api_key_hash: str) -> None:
        async with self._write() as conn:
            result = await conn.execute(update(partners).where(partners.c.id == partner_id).values(api_key_hash=api_key_hash))
            if result.rowcount == 0:
                raise NotFound(f"partner {partner_id} does not exist")

    async def set_callback(self, partner_id: str, url: str | None, secret: str | None) -> None:
        async with self._write() as conn:
            result = await conn.execute(
                update(partners).where(partners.c.id == partner_id).values(callback_url=url, callback_secret=secret)
            )
            if result.rowcount == 0:
                raise NotFound(f"partner {partner_id} does not exist")

    async def add_shortcode(self, shortcode: str, partner_id: str, networks: Iterable[int] | None) -> None:
        network_text = ",".join(str(n) for n in sorted(set(networks))) if networks is not None else None
        try:
            async with self._write() as conn:
                owner = (await conn.execute(select(partners.c.id).where(partners.c.id == partner_id))).first()
                if owner is None:
                    raise NotFound(f"partner {partner_id} does not exist")
                await conn.execute(
                    insert(shortcodes).values(shortcode=shortcode, partner_id=partner_id, networks=network_text, created_at=now_ms())
                )
        except IntegrityError:
            raise AlreadyExists(f"shortcode {shortcode} is already registered") from None

    async def get_shortcode(self, shortcode: str) -> Shortcode | None:
        async with self._read() as conn:
            row = (await conn.execute(select(shortcodes).where(shortcodes.c.shortcode == shortcode))).first()
        if row is None:
            return None
        networks = frozenset(int(n) for n in row.networks.split(",") if n) if row.networks is not None else None
        return Shortcode(row.shortcode, row.partner_id, networks)

    async def list_shortcodes(self, partner_id: str) -> list[Shortcode]:
        async with self._read() as conn:
            rows = (await conn.execute(select(shortcodes).where(shortcodes.c.partner_id == partner_id).order_by(shortcodes.c.shortcode))).all()
        return [
            Shortcode(r.shortcode, r.partner_id, frozenset(int(n) for n in r.networks.split(",") if n) if r.networks is not None else None)
            for r in rows
        ]

    # -- acceptance ----------------------------------------------------------------------------

    async def next_message_ids(self, count: int) -> list[int]:
        """`count` fresh message ids, unique across every process sharing the database."""
        async with self._id_lock:
            ids: list[int] = []
            while len(ids) < count:
                if self._id_next >= self._id_end:
                    await self._reserve_id_block(max(ID_BLOCK_SIZE, count))
                take = min(count - len(ids), self._id_end - self._id_next)
                ids.extend(range(self._id_next, self._id_next + take))
                self._id_next += take
            return ids

    async def _reserve_id_block(self, size: int) -> None:
        async with self._write() as conn:
            end = (
                await conn.execute(
                    update(id_blocks)
                    .where(id_blocks.c.name == "message")
                    .values(next_value=id_blocks.c.next_value + size)
                    .returning(id_blocks.c.next_value)
                )
            ).scalar_one()
        self._id_next, self._id_end = end - size, end

    async def accept(
        self,
        partner_id: str,
        cost: int,
        rows: Sequence[NewMessage],
        reference: str,
        idempotency: tuple[str, str, bytes] | None = None,
    ) -> Accepted | LowCredit:
        """Charges `cost`, writes the ledger entry, every message row and the idempotency
        record in one transaction, or nothing at all.

        Each row carries its own `id` (from `next_message_ids`). Raises IdempotencyConflict when another request with the same key won,
        StoreUnavailable when the database could not be used (after checking that an
        interrupted commit did not in fact land).
        """
        now = now_ms()
        try:
            async with self._write() as conn:
                charged = (
                    await conn.execute(
                        update(partners)
                        .where(partners.c.id == partner_id, partners.c.status == "active", partners.c.balance >= cost)
                        .values(balance=partners.c.balance - cost)
                        .returning(partners.c.balance)
                    )
                ).first()
                if charged is None:
                    balance = (await conn.execute(select(partners.c.balance).where(partners.c.id == partner_id))).scalar()
                    await conn.rollback()
                    return LowCredit(balance or 0)
                ledger_id = (
                    await conn.execute(
                        insert(ledger)
                        .values(
                            partner_id=partner_id,
                            amount=-cost,
                            balance_after=charged.balance,
                            kind="charge",
                            reference=reference,
                            message_count=len(rows),
                            created_at=now,
                        )
                        .returning(ledger.c.id)
                    )
                ).scalar_one()
                await conn.exec_driver_sql(self._message_insert_sql, [(*row, ledger_id) for row in rows])
                if idempotency is not None:
                    key, body_sha256, response = idempotency
                    await conn.execute(
                        delete(idempotency_keys).where(
                            idempotency_keys.c.partner_id == partner_id,
                            idempotency_keys.c.key == key,
                            idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL_MS,
                        )
                    )
                    await conn.execute(
                        insert(idempotency_keys).values(
                            partner_id=partner_id, key=key, body_sha256=body_sha256, response=response, created_at=now
                        )
                    )
            return Accepted(ledger_id)
        except IntegrityError:
            if idempotency is not None and await self.find_answer(partner_id, idempotency[0]) is not None:
                raise IdempotencyConflict(idempotency[0]) from None
            raise
        except StoreUnavailable:
            # A commit cut off half-way may have landed; the first message id tells.
            if rows and await self._message_exists(rows[0].id):
                log.warning("commit reported failure but the batch is stored; answering accepted")
                return Accepted(-1)
            raise

    async def _message_exists(self, message_id: int) -> bool:
        try:
            async with self._read() as conn:
                return (await conn.execute(select(messages.c.id).where(messages.c.id == message_id))).first() is not None
        except StoreUnavailable:
            return False

    async def find_answer(self, partner_id: str, key: str) -> StoredAnswer | None:
        """The stored answer of an earlier request with this Idempotency-Key, if within 24 h."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(idempotency_keys.c.body_sha256, idempotency_keys.c.response).where(
                        idempotency_keys.c.partner_id == partner_id,
                        idempotency_keys.c.key == key,
                        idempotency_keys.c.created_at >= now_ms() - IDEMPOTENCY_TTL_MS,
                    )
                )
            ).first()
        return StoredAnswer(row.body_sha256, bytes(row.response)) if row is not None else None

    async def purge_idempotency_keys(self) -> int:
        async with self._write() as conn:
            result = await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now_ms() - IDEMPOTENCY_TTL_MS))
            return result.rowcount

    # -- reporting ----------------------------------------------------------------------------

    async def get_message(self, partner_id: str, message_id: int) -> MessageView | None:
        """The message if it exists and belongs to `partner_id`; otherwise None, the same
        answer for both so that one partner cannot probe another's ids."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(
                        messages.c.id,
                        messages.c.partner_id,
                        messages.c.msisdn,
                        messages.c.network_id,
                        messages.c.state,
                        messages.c.created_at,
                        messages.c.submitted_at,
                        messages.c.done_at,
                        messages.c.clientsmsid,
                    ).where(messages.c.id == message_id, messages.c.partner_id == partner_id)
                )
            ).first()
        if row is None:
            return None
        return MessageView(*row)

    async def ledger_entries(self, partner_id: str) -> list[dict[str, Any]]:
        async with self._read() as conn:
            rows = (await conn.execute(select(ledger).where(ledger.c.partner_id == partner_id).order_by(ledger.c.id))).mappings().all()
        return [dict(r) for r in rows]


def _configure_sqlite(engine: AsyncEngine, synchronous: str, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take transaction control from the driver so that BEGIN is ours (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
