"""Ledger entries: every change of a partner's balance leaves one row, built here for every kind
(top-up, charge, refund, transfer), so that each entry has the same columns filled the same way
and a new kind of entry is one more caller, not one more insert.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import bindparam, insert
from sqlalchemy.engine import Connection

from .prepared import Prepared
from .schema import ledger

LedgerKind = Literal["topup", "charge", "refund", "transfer_out", "transfer_in"]
_COLUMNS = ("partner_id", "amount", "balance_after", "kind", "reference", "message_count", "batch_id", "counterpart_id", "created_at")


def ledger_entry(
    partner_id: str,
    amount: int,
    balance_after: int,
    kind: LedgerKind,
    reference: str,
    now: int,
    *,
    message_count: int = 0,
    batch_id: int | None = None,
    counterpart_id: int | None = None,
) -> dict[str, Any]:
    """One ledger row: `amount` is signed (top-ups, refunds and transfers in above zero),
    `balance_after` the partner's balance once it is applied."""
    return {
        "partner_id": partner_id,
        "amount": amount,
        "balance_after": balance_after,
        "kind": kind,
        "reference": reference,
        "message_count": message_count,
        "batch_id": batch_id,
        "counterpart_id": counterpart_id,
        "created_at": now,
    }


def write_entry(conn: Connection, entry: dict[str, Any]) -> int:
    """Inserts one entry of `ledger_entry` and returns its id."""
    return conn.execute(insert(ledger).values(entry).returning(ledger.c.id)).scalar_one()


# The accepting transaction writes a group's charges with one statement.
_INSERT_ENTRIES = Prepared(lambda: insert(ledger).values({c: bindparam(c) for c in _COLUMNS}))


def write_entries(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Inserts entries of `ledger_entry`, several at once."""
    _INSERT_ENTRIES.many(conn, entries)
