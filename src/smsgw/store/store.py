"""The one interface through which the gateway reads and writes its database.

Every query lives in this package, written in SQLAlchemy Core that SQLite and PostgreSQL both
run. Each operation is a plain function of a Connection that runs as one transaction
(store/database.py decides how: a thread for SQLite, asyncpg for PostgreSQL); the `Store`
methods are the async face of those functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..domain.apikeys import KeyHasher
from .acceptance import (
    IDEMPOTENCY_TTL_MS,
    Accepted,
    AcceptOutcome,
    AcceptRequest,
    LowCredit,
    NewMessage,
    PartnerInactive,
    accept_group,
    reserve_id_block,
)
from .database import Database, PostgresDatabase, SqliteDatabase, is_unavailable
from .errors import AlreadyExists, CommitOutcomeUnknown, IdempotencyConflict, NotFound, OutcomeUnknown, SchemaOutOfDate, StoreUnavailable
from .grouping import GroupCommit
from .ledger_entries import ledger_entry, write_entry
from .migrate import current_revision, head_revision, upgrade_to_head
from .prepared import Prepared
from .schema import idempotency_keys, ledger, messages, partners, server_secrets, shortcodes
from .urls import StoreUrl

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

ID_BLOCK_SIZE = 100_000
# A process hands out ids from a block for at most this long, then reserves a fresh one: every
# id below the counter read at time T is handed out by T plus this, which is what lets the
# message roller (rollups.py) know when an id range is complete.
ID_BLOCK_SECONDS = 10.0
# A group of accepting requests stops growing at this many messages: past a few thousand rows
# a commit is no cheaper per row, and a longer transaction only delays everyone's answer.
ACCEPT_GROUP_ROWS = 5_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    api_key_hash: str = field(repr=False)
    balance: int
    status: str
    callback_url: str | None
    callback_secret: str | None = field(repr=False)
    parent_id: str | None = None
    rate: int = 100  # money per unit of a child account, hundredths
    max_mps: int | None = None
    allowed_ips: str | None = None
    callback_allow_private: bool = False  # callback and inbound URLs may lead to private addresses

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class Shortcode:
    shortcode: str
    partner_id: str
    networks: frozenset[int] | None  # None: enabled on every network
    promotional: bool = False


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


@contextlib.asynccontextmanager
async def _availability() -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        if is_unavailable(exc):
            raise StoreUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        raise


class Store:
    def __init__(self, db: Database, url: StoreUrl) -> None:
        self.db = db
        self.url = url
        self.is_sqlite = url.is_sqlite
        self._id_lock = asyncio.Lock()
        self._id_next = 0
        self._id_end = 0
        self._id_reserved_at = 0.0  # time.monotonic() just before the block was reserved
        # The hot insert is compiled once for this database and sent with plain tuples:
        # per-row dictionaries and bind processing cost more than the insert itself.
        compiled = insert(messages).compile(dialect=db.dialect, column_keys=list(NewMessage._fields))
        if list(compiled.positiontup or []) != list(NewMessage._fields):
            raise RuntimeError(f"unexpected parameter order for the message insert: {compiled.positiontup}")
        self._message_insert_sql = str(compiled)
        # A durable commit costs one fsync whatever it holds (and SQLite has one writer):
        # accepting requests that arrive while one transaction is being written share the next.
        # PostgreSQL overlaps concurrent connections' commits too, but measured, sharing still
        # halved the time per message there (docs/performance.md).
        self.accept_groups: GroupCommit[AcceptRequest, AcceptOutcome] = GroupCommit(self._write_accept_group, max_weight=ACCEPT_GROUP_ROWS)

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(cls, url: StoreUrl, *, sqlite_synchronous: str = "FULL", lock_timeout_ms: int = 10_000, pool_size: int = 10) -> Store:
        if url.is_sqlite:
            return cls(SqliteDatabase(url, synchronous=sqlite_synchronous, lock_timeout_ms=lock_timeout_ms), url)
        return cls(PostgresDatabase(url, pool_size=pool_size, lock_timeout_ms=lock_timeout_ms), url)

    async def close(self) -> None:
        await self.db.close()

    async def read(self, fn, *args: Any) -> Any:
        """Runs `fn(conn, *args)` as one read transaction; StoreUnavailable if it cannot."""
        async with _availability():
            return await self.db.read(fn, *args)

    async def lookup(self, fn, *args: Any) -> Any:
        """Runs `fn(conn, *args)`, one `Prepared` query asked on every request (database.py);
        StoreUnavailable if it cannot."""
        async with _availability():
            return await self.db.lookup(fn, *args)

    async def write(self, fn, *args: Any) -> Any:
        """Runs `fn(conn, *args)` as one write transaction; StoreUnavailable if it cannot."""
        async with _availability():
            return await self.db.write(fn, *args)

    async def migrate(self) -> None:
        """Brings the schema to the newest revision (Alembic)."""
        await self.write(upgrade_to_head)

    async def prepare(self) -> None:
        """Makes the store usable by this version: the embedded SQLite store migrates itself;
        a shared PostgreSQL store is migrated only by `smsgw migrate`, so that an operator
        decides when, and this raises SchemaOutOfDate if that has not happened."""
        current = await self.read(current_revision)
        if current == head_revision():
            return
        if self.is_sqlite:
            await self.migrate()
            return
        raise SchemaOutOfDate(f"the database schema is at {current or 'nothing'}, this version needs {head_revision()}: run `smsgw migrate`")

    # -- partners and shortcodes -------------------------------------------------------------

    async def count_partners(self) -> int:
        return await self.read(lambda conn: conn.execute(select(func.count()).select_from(partners)).scalar_one())

    async def create_partner(
        self, partner_id: str, name: str, api_key_hash: str, credits: int, parent_id: str | None = None, rate: int = 100
    ) -> None:
        """A partner; with `parent_id`, a child account of that reseller, sold units at `rate`."""

        def create(conn: Connection) -> None:
            now = now_ms()
            if parent_id is not None and conn.execute(select(partners.c.id).where(partners.c.id == parent_id)).first() is None:
                raise NotFound(f"partner {parent_id} does not exist")
            conn.execute(
                insert(partners).values(
                    id=partner_id,
                    name=name,
                    api_key_hash=api_key_hash,
                    balance=credits,
                    status="active",
                    created_at=now,
                    parent_id=parent_id,
                    rate=rate,
                )
            )
            if credits:
                write_entry(conn, ledger_entry(partner_id, credits, credits, "topup", "initial credit", now))

        try:
            await self.write(create)
        except IntegrityError:
            raise AlreadyExists(f"partner {partner_id} already exists") from None

    async def get_partner(self, partner_id: str) -> Partner | None:
        def get(conn: Connection) -> Partner | None:
            found = _PARTNER_BY_ID.all(conn, partner_id=partner_id)
            return Partner(*found[0]) if found else None

        return await self.lookup(get)

    async def top_up(
        self, partner_id: str, amount: int, reference: str, once: bool = False, audit: Callable[[Connection, int], None] | None = None
    ) -> int:
        """Adds `amount` (hundredths; negative for a correction that keeps the balance at or
        above zero) through the ledger and returns the new balance. With `once`, a top-up
        with the same reference as an earlier one is not added again (a billing system that
        retries must not sell the credit twice). `audit(conn, balance)` records who did it,
        in the same transaction."""

        def top_up(conn: Connection) -> int:
            if once:
                earlier = conn.execute(
                    select(ledger.c.id).where(ledger.c.partner_id == partner_id, ledger.c.kind == "topup", ledger.c.reference == reference).limit(1)
                ).first()
                if earlier is not None:
                    return conn.execute(select(partners.c.balance).where(partners.c.id == partner_id)).scalar_one()
            row = conn.execute(
                update(partners)
                .where(partners.c.id == partner_id, partners.c.balance + amount >= 0)
                .values(balance=partners.c.balance + amount)
                .returning(partners.c.balance)
            ).first()
            if row is None:
                exists = conn.execute(select(partners.c.balance).where(partners.c.id == partner_id)).first()
                if exists is None:
                    raise NotFound(f"partner {partner_id} does not exist")
                raise ValueError(f"a change of {amount / 100:.2f} would take the balance {exists.balance / 100:.2f} below zero")
            write_entry(conn, ledger_entry(partner_id, amount, row.balance, "topup", reference, now_ms()))
            if audit is not None:
                audit(conn, row.balance)
            return row.balance

        return await self.write(top_up)

    async def _update_partner(self, partner_id: str, **values: Any) -> None:
        def change(conn: Connection) -> None:
            if conn.execute(update(partners).where(partners.c.id == partner_id).values(**values)).rowcount == 0:
                raise NotFound(f"partner {partner_id} does not exist")

        await self.write(change)

    async def set_partner_status(self, partner_id: str, status: str) -> None:
        await self._update_partner(partner_id, status=status)

    async def set_api_key_hash(self, partner_id: str, api_key_hash: str) -> None:
        await self._update_partner(partner_id, api_key_hash=api_key_hash)

    async def replace_api_key_hash(self, partner_id: str, old_hash: str, new_hash: str) -> bool:
        """Stores `new_hash` (the same key, hashed the current way) only if the partner still
        has `old_hash`: a key rotated meanwhile is never overwritten."""

        def replace(conn: Connection) -> bool:
            changed = conn.execute(
                update(partners).where(partners.c.id == partner_id, partners.c.api_key_hash == old_hash).values(api_key_hash=new_hash)
            )
            return changed.rowcount == 1

        return await self.write(replace)

    async def api_key_hasher(self, configured_secret: str | None) -> KeyHasher:
        """The hasher of API keys: under the configured secret when there is one, else under
        the store's own (generated by migration 0005); hashes made under the store's secret
        keep verifying after a secret is configured."""

        def read_secret(conn: Connection) -> str:
            value = conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == "api_key_hmac")).scalar_one_or_none()
            if value is None:
                raise SchemaOutOfDate("the store has no API key secret (server_secrets.api_key_hmac): run `smsgw migrate`")
            return value

        stored_secret = await self.read(read_secret)
        if configured_secret is None:
            return KeyHasher(stored_secret)
        return KeyHasher(configured_secret, stored_secret)

    async def set_callback(self, partner_id: str, url: str | None, secret: str | None) -> None:
        await self._update_partner(partner_id, callback_url=url, callback_secret=secret)

    async def allow_private_destinations(self, partner_id: str, allowed: bool) -> None:
        """Whether the partner's callback and inbound URLs may lead to loopback, private or
        link-local addresses (tests, intranets)."""
        await self._update_partner(partner_id, callback_allow_private=int(allowed))

    async def add_shortcode(self, shortcode: str, partner_id: str, networks: Iterable[int] | None) -> None:
        network_text = ",".join(str(n) for n in sorted(set(networks))) if networks is not None else None

        def add(conn: Connection) -> None:
            if conn.execute(select(partners.c.id).where(partners.c.id == partner_id)).first() is None:
                raise NotFound(f"partner {partner_id} does not exist")
            conn.execute(insert(shortcodes).values(shortcode=shortcode, partner_id=partner_id, networks=network_text, created_at=now_ms()))

        try:
            await self.write(add)
        except IntegrityError:
            raise AlreadyExists(f"shortcode {shortcode} is already registered") from None

    async def get_shortcode(self, shortcode: str) -> Shortcode | None:
        def get(conn: Connection) -> Shortcode | None:
            found = _SHORTCODE_BY_NAME.all(conn, shortcode=shortcode)
            return _shortcode(*found[0]) if found else None

        return await self.lookup(get)

    async def list_shortcodes(self, partner_id: str) -> list[Shortcode]:
        def list_(conn: Connection) -> list[Shortcode]:
            rows = conn.execute(select(shortcodes).where(shortcodes.c.partner_id == partner_id).order_by(shortcodes.c.shortcode)).all()
            return [_shortcode(r.shortcode, r.partner_id, r.networks, r.promotional) for r in rows]

        return await self.read(list_)

    # -- acceptance ----------------------------------------------------------------------------

    async def next_message_ids(self, count: int) -> list[int]:
        """`count` fresh message ids, unique across every process sharing the database, and
        one contiguous range: a request's messages are the ids from its batch id up (less the
        entries refused), which the portal's message list reads by the ledger's charge entries."""
        async with self._id_lock:
            if self._id_end - self._id_next < count or time.monotonic() - self._id_reserved_at > ID_BLOCK_SECONDS:
                # The rest of the old block is given up: a few ids, against a range split in two.
                size = max(ID_BLOCK_SIZE, count)
                reserved_at = time.monotonic()
                end = await self.write(reserve_id_block, size)
                self._id_next, self._id_end, self._id_reserved_at = end - size, end, reserved_at
            first = self._id_next
            self._id_next += count
            return list(range(first, first + count))

    async def accept(
        self,
        partner_id: str,
        cost: int,
        rows: Sequence[tuple],
        batch_id: int,
        reference: str,
        idempotency: tuple[str, str, bytes] | None = None,
        smpp_account: str | None = None,
    ) -> Accepted | LowCredit | PartnerInactive:
        """Charges `cost`, writes the ledger entry, every message row and the idempotency
        record in one transaction, or nothing at all.

        Each row is a tuple in `NewMessage` field order with its own id from
        `next_message_ids`. Requests that arrive while another accepting transaction is being
        written share the next one (group commit), each with its own decision.
        Raises IdempotencyConflict when another request with the same key won, StoreUnavailable
        when the database could not be used (after checking that an interrupted commit did not
        in fact land). `smpp_account`: the messages came over the partner SMPP server through
        that account, and their receipts are owed to its binds (smpp_receipts).
        """
        request = AcceptRequest(partner_id, cost, rows, batch_id, reference, idempotency, smpp_account)
        try:
            async with _availability():
                return await self.accept_groups.submit(request, len(rows))
        except IntegrityError:
            if idempotency is not None and await self.find_answer(partner_id, idempotency[0]) is not None:
                raise IdempotencyConflict(idempotency[0]) from None
            raise
        except CommitOutcomeUnknown as exc:
            # The first message id tells whether the commit landed; the store may need a
            # moment to come back before it can be asked.
            for delay in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0):
                await asyncio.sleep(delay)
                try:
                    landed = await self.read(lambda conn: conn.execute(select(messages.c.id).where(messages.c.id == rows[0][0])).first() is not None)
                except StoreUnavailable:
                    continue
                if landed:
                    log.warning("a commit reported failure but the batch is stored; answering accepted")
                    return Accepted(batch_id)
                raise StoreUnavailable(f"commit failed and did not land: {exc}") from exc
            raise OutcomeUnknown(str(exc)) from exc

    async def _write_accept_group(self, requests: list[AcceptRequest]) -> list[AcceptOutcome | BaseException]:
        return await self.db.write(accept_group, requests, self._message_insert_sql, now_ms())

    async def find_answer(self, partner_id: str, key: str) -> StoredAnswer | None:
        """The stored answer of an earlier request with this Idempotency-Key, if within 24 h."""

        def find(conn: Connection) -> StoredAnswer | None:
            row = conn.execute(
                select(idempotency_keys.c.body_sha256, idempotency_keys.c.response).where(
                    idempotency_keys.c.partner_id == partner_id,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.created_at >= now_ms() - IDEMPOTENCY_TTL_MS,
                )
            ).first()
            return StoredAnswer(row.body_sha256, zlib.decompress(bytes(row.response))) if row is not None else None

        return await self.read(find)

    # -- reporting ----------------------------------------------------------------------------

    async def get_message(self, partner_id: str, message_id: int) -> MessageView | None:
        """The message if it exists and belongs to `partner_id`; otherwise None, the same
        answer for both so that one partner cannot probe another's ids."""

        def get(conn: Connection) -> MessageView | None:
            row = conn.execute(
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
            ).first()
            return MessageView(*row) if row is not None else None

        return await self.read(get)

    async def ledger_entries(self, partner_id: str) -> list[dict[str, Any]]:
        return await self.read(
            lambda conn: [dict(r) for r in conn.execute(select(ledger).where(ledger.c.partner_id == partner_id).order_by(ledger.c.id)).mappings()]
        )


def _shortcode(shortcode: str, partner_id: str, network_text: str | None, promotional: int) -> Shortcode:
    networks = frozenset(int(n) for n in network_text.split(",") if n) if network_text is not None else None
    return Shortcode(shortcode, partner_id, networks, bool(promotional))


# Asked on every request: compiled once (prepared.py), in the field order of the dataclasses.
_PARTNER_BY_ID = Prepared(
    lambda: select(
        partners.c.id,
        partners.c.name,
        partners.c.api_key_hash,
        partners.c.balance,
        partners.c.status,
        partners.c.callback_url,
        partners.c.callback_secret,
        partners.c.parent_id,
        partners.c.rate,
        partners.c.max_mps,
        partners.c.allowed_ips,
        partners.c.callback_allow_private,
    ).where(partners.c.id == bindparam("partner_id"))
)
_SHORTCODE_BY_NAME = Prepared(
    lambda: select(shortcodes.c.shortcode, shortcodes.c.partner_id, shortcodes.c.networks, shortcodes.c.promotional).where(
        shortcodes.c.shortcode == bindparam("shortcode")
    )
)


def open_store(settings: Settings) -> Store:
    """The store these settings name (not yet prepared or migrated)."""
    return Store.open(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        lock_timeout_ms=settings.lock_timeout_ms,
        pool_size=settings.database_pool_size,
    )
