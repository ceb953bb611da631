"""The accepting transaction: the charge, its ledger entry, every message row and the
idempotency record of a request written together or not at all, several requests' at once
when they share a group commit (grouping.py); and the message-id blocks they draw from.
`Store.accept` and `Store.next_message_ids` are its async face.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

from .database import is_unavailable
from .errors import IdempotencyConflict
from .ledger_entries import ledger_entry, write_entries
from .prepared import Prepared, PreparedIn
from .schema import id_blocks, idempotency_keys, partners, smpp_receipts

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000


class NewMessage(NamedTuple):
    """One accepted message as the acceptance path hands it to `Store.accept`: the field
    order is the column order of the insert, so rows go to the driver as they are (the hot
    path builds plain tuples in this order)."""

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
    batch_id: int
    expires_at: int


@dataclass(frozen=True)
class Accepted:
    batch_id: int


@dataclass(frozen=True)
class LowCredit:
    balance: int


@dataclass(frozen=True)
class PartnerInactive:
    """The partner was suspended (or removed) after its request was authenticated."""


class AcceptRequest(NamedTuple):
    partner_id: str
    cost: int
    rows: Sequence[tuple]
    batch_id: int
    reference: str
    idempotency: tuple[str, str, bytes] | None  # key, SHA-256 of the body, answer
    smpp_account: str | None = None


AcceptOutcome = Accepted | LowCredit | PartnerInactive


def accept_group(conn: Connection, requests: list[AcceptRequest], insert_messages: str, now: int) -> list[AcceptOutcome | BaseException]:
    """One transaction for several accepting requests, one outcome per request: each is
    charged whole or not at all, and one that the database refuses (a repeated idempotency
    key, a refused row) fails alone."""
    if len(requests) == 1:
        # Alone in its transaction: a refusal rolls the whole of it back, no savepoint needed.
        return _charge_and_store(conn, requests, insert_messages, now)
    try:
        with conn.begin_nested():
            return _charge_and_store(conn, requests, insert_messages, now)
    except Exception as exc:
        if is_unavailable(exc):
            raise
    # Rare (the whole group was rolled back to its savepoint): each request again on its own,
    # to find the one the database refuses.
    outcomes: list[AcceptOutcome | BaseException] = []
    for request in requests:
        try:
            with conn.begin_nested():
                outcomes.extend(_charge_and_store(conn, [request], insert_messages, now))
        except Exception as exc:
            if is_unavailable(exc):
                raise
            outcomes.append(exc)
    return outcomes


def _charge_and_store(conn: Connection, requests: list[AcceptRequest], insert_messages: str, now: int) -> list[AcceptOutcome | BaseException]:
    """Decides each request in order against the balances read (and locked) once, then
    writes every charge, ledger entry, message and idempotency record with one statement per
    table: several requests of one partner see each other's debits."""
    accounts = {partner_id: [balance, status] for partner_id, balance, status in _ACCOUNTS.rows(conn, sorted({r.partner_id for r in requests}))}
    outcomes: list[AcceptOutcome | BaseException] = []
    debits: dict[str, int] = {}
    entries: list[dict[str, Any]] = []
    rows: list[tuple] = []
    answers: list[dict[str, Any]] = []
    owed_receipts: list[dict[str, Any]] = []
    keys_taken: set[tuple[str, str]] = set()
    for request in requests:
        account = accounts.get(request.partner_id)
        if account is None or account[1] != "active":
            outcomes.append(PartnerInactive())
            continue
        if request.idempotency is not None and (request.partner_id, request.idempotency[0]) in keys_taken:
            # An earlier request of this group with the same key is accepted: this one gets
            # its answer once the group is committed.
            outcomes.append(IdempotencyConflict(request.idempotency[0]))
            continue
        if account[0] < request.cost:
            outcomes.append(LowCredit(account[0]))
            continue
        account[0] -= request.cost
        debits[request.partner_id] = debits.get(request.partner_id, 0) + request.cost
        entries.append(
            ledger_entry(
                request.partner_id,
                -request.cost,
                account[0],
                "charge",
                request.reference,
                now,
                message_count=len(request.rows),
                batch_id=request.batch_id,
            )
        )
        rows.extend(request.rows)
        if request.smpp_account is not None:
            owed_receipts.extend({"message_id": row[0], "system_id": request.smpp_account} for row in request.rows)
        if request.idempotency is not None:
            key, body_sha256, response = request.idempotency
            keys_taken.add((request.partner_id, key))
            answers.append(_answer_row(request.partner_id, key, body_sha256, response, now))
        outcomes.append(Accepted(request.batch_id))
    if not entries:
        return outcomes
    for partner_id, debit in debits.items():
        if not _DEBIT.all(conn, partner_id=partner_id, at_least=debit, debit=debit):
            raise RuntimeError(f"the balance of {partner_id} changed under its row lock")
    write_entries(conn, entries)
    if conn.dialect.name == "postgresql":
        # COPY is about twice as fast as a multi-row insert on PostgreSQL.
        driver: Any = conn.connection.driver_connection  # asyncpg's connection: no stubs
        await_only(driver.copy_records_to_table("messages", records=rows, columns=NewMessage._fields))
    else:
        conn.exec_driver_sql(insert_messages, rows)
    remember_answers(conn, answers, now)
    if owed_receipts:
        conn.execute(insert(smpp_receipts), owed_receipts)
    return outcomes


def remember_answer(conn: Connection, partner_id: str, idempotency: tuple[str, str, bytes], now: int) -> None:
    """Stores the answer of a request with an Idempotency-Key, inside the transaction that did
    what it answers; a second request with the key fails on the primary key and rolls back."""
    key, body_sha256, response = idempotency
    remember_answers(conn, [_answer_row(partner_id, key, body_sha256, response, now)], now)


def remember_answers(conn: Connection, answers: list[dict[str, Any]], now: int) -> None:
    """`remember_answer` for several requests with one statement per table (an expired record
    of the same key is replaced)."""
    if not answers:
        return
    conn.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.partner_id == bindparam("old_partner"),
            idempotency_keys.c.key == bindparam("old_key"),
            idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL_MS,
        ),
        [{"old_partner": a["partner_id"], "old_key": a["key"]} for a in answers],
    )
    conn.execute(insert(idempotency_keys), answers)


def _answer_row(partner_id: str, key: str, body_sha256: str, response: bytes, now: int) -> dict[str, Any]:
    # Compressed: a 1000-entry answer is ~130 KB of JSON and ~12 KB so.
    return {"partner_id": partner_id, "key": key, "body_sha256": body_sha256, "response": zlib.compress(response, 1), "created_at": now}


def reserve_id_block(conn: Connection, size: int) -> int:
    return conn.execute(
        update(id_blocks).where(id_blocks.c.name == "message").values(next_value=id_blocks.c.next_value + size).returning(id_blocks.c.next_value)
    ).scalar_one()


# The accepting transaction's statements (one set per group of requests).
_ACCOUNTS = PreparedIn(lambda ids: select(partners.c.id, partners.c.balance, partners.c.status).where(partners.c.id.in_(ids)).with_for_update())


_DEBIT = Prepared(
    lambda: (
        update(partners)
        .where(partners.c.id == bindparam("partner_id"), partners.c.balance >= bindparam("at_least"))
        .values(balance=partners.c.balance - bindparam("debit"))
        .returning(partners.c.id)
    )
)
