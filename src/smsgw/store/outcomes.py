"""What became of the messages a dispatcher tried: submitted (with the keys their receipts
will quote), rescheduled, or failed before any carrier took them (refunded). `record_outcomes`
writes a dispatcher's whole batch, receipts and callbacks included, in one transaction;
set-based, so that thousands of outcomes per second cost a handful of statements per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, literal, update
from sqlalchemy.engine import Connection

from . import inbound, rollups
from .callbacks import queue_callbacks
from .delivery_common import BLACKLISTED, SCHEDULED, SENT, insert_ignoring_duplicates
from .ledger_entries import ledger_entry, write_entry
from .prepared import Prepared
from .receipts import IncomingReceipt, ReceiptOutcome, apply_receipts, match_waiting
from .schema import (
    message_parts,
    messages,
    partners,
    receipt_keys,
)


@dataclass(frozen=True)
class Submitted:
    message_id: int
    connector: str
    smsc_ids: list[str]
    keys: list[list[str]]  # per part: smsc_id_keys of its id


@dataclass(frozen=True)
class Retry:
    message_id: int
    owner: str
    due_at: int
    error: str
    unanswered: bool = False  # the attempt was a submit_sm that got no submit_sm_resp


@dataclass(frozen=True)
class Failure:
    message_id: int
    state: int
    error: str
    attempted: bool = False  # the failure is the outcome of a submit attempt
    owner: str | None = None  # the dispatcher whose lease it must still hold (None: sweeps)
    unanswered: bool = False  # that attempt was a submit_sm that got no submit_sm_resp
    keeps_last_error: bool = False  # the error of the last attempt stays, after this one


EXPIRED = "validity period ran out before any carrier took it"
_MARK_SENT = Prepared(
    lambda: (
        update(messages)
        .where(messages.c.id == bindparam("m_id"), messages.c.state == SCHEDULED)
        .values(
            state=SENT,
            submitted_at=bindparam("m_now"),
            connector=bindparam("m_connector"),
            attempts=messages.c.attempts + 1,
            lease_owner=None,
            lease_until=None,
            error=None,
        )
    )
)
_INSERT_PARTS = insert_ignoring_duplicates(message_parts, "message_id", "part_no", "connector", "smsc_message_id", "state")
_INSERT_KEYS = insert_ignoring_duplicates(receipt_keys, "connector", "key", "message_id", "part_no", "parts")


def record_submitted(conn: Connection, items: Sequence[Submitted], now: int) -> ReceiptOutcome:
    """The carrier took these messages: SentToNetwork, with the SMSC id of every part and the
    keys a receipt may quote it by. A message submitted twice (a lease ran out mid-send)
    keeps its first ids, and the second copy's keys are added so its receipts match too.
    Receipts that overtook these submit_sm_resp are matched now, by the same keys."""
    if not items:
        return ReceiptOutcome()
    _MARK_SENT.many(conn, [{"m_id": s.message_id, "m_connector": s.connector, "m_now": now} for s in items])
    parts: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for s in items:
        count = len(s.smsc_ids)
        for number, (smsc_id, part_keys) in enumerate(zip(s.smsc_ids, s.keys), start=1):
            parts.append({"message_id": s.message_id, "part_no": number, "connector": s.connector, "smsc_message_id": smsc_id[:80], "state": SENT})
            for key in part_keys:
                keys.append({"connector": s.connector, "key": key[:80], "message_id": s.message_id, "part_no": number, "parts": count})
    _INSERT_PARTS.many(conn, parts)
    _INSERT_KEYS.many(conn, keys)
    return match_waiting(conn, {(k["connector"], k["key"]) for k in keys}, now)


def reschedule(conn: Connection, items: Sequence[Retry]) -> None:
    """Temporary failures: try again at `due_at`; only the lease holder may move a message."""
    if items:
        conn.execute(
            update(messages)
            .where(messages.c.id == bindparam("m_id"), messages.c.state == SCHEDULED, messages.c.lease_owner == bindparam("m_owner"))
            .values(
                due_at=bindparam("m_due"),
                attempts=messages.c.attempts + 1,
                unanswered=messages.c.unanswered + bindparam("m_unanswered"),
                error=bindparam("m_error"),
                lease_owner=None,
                lease_until=None,
            ),
            [
                {"m_id": r.message_id, "m_owner": r.owner, "m_due": r.due_at, "m_unanswered": int(r.unanswered), "m_error": r.error[:200]}
                for r in items
            ],
        )


def _final_error(item: Failure) -> Any:
    if not item.keeps_last_error:
        return item.error[:200]
    # An expired message's last carrier answer (e.g. ESME_RMSGQFUL) says why it expired.
    return func.substr(literal(item.error) + func.coalesce(literal("; last answer: ") + messages.c.error, ""), 1, 200)


def fail_unsent(conn: Connection, items: Sequence[Failure], now: int) -> list[int]:
    """Final failure of messages no carrier accepted (rejected at submit, expired in the
    gateway, or never answered): final state, and the charge refunded through the ledger in
    the same transaction unless a submit_sm of the message went unanswered (the carrier may
    have delivered it, and charges us for it). A message already past SCHEDULED is left
    alone, so nothing is refunded twice. Returns the ids that changed."""
    changed: list[int] = []
    for item in items:
        conditions = [messages.c.id == item.message_id, messages.c.state == SCHEDULED]
        if item.owner is not None:
            # A dispatcher whose lease ran out must not fail (and refund) a message that
            # another dispatcher may since have delivered.
            conditions.append(messages.c.lease_owner == item.owner)
        row = conn.execute(
            update(messages)
            .where(*conditions)
            .values(
                state=item.state,
                done_at=now,
                error=_final_error(item),
                attempts=messages.c.attempts + (1 if item.attempted else 0),
                unanswered=messages.c.unanswered + (1 if item.unanswered else 0),
                lease_owner=None,
                lease_until=None,
            )
            .returning(messages.c.partner_id, messages.c.cost, messages.c.unanswered)
        ).first()
        if row is None:
            continue
        changed.append(item.message_id)
        if row.cost and not row.unanswered:
            balance = conn.execute(
                update(partners).where(partners.c.id == row.partner_id).values(balance=partners.c.balance + row.cost).returning(partners.c.balance)
            ).scalar_one()
            reference = f"message {item.message_id} not delivered: {item.error}"[:200]
            write_entry(conn, ledger_entry(row.partner_id, row.cost, balance, "refund", reference, now, message_count=1))
    return changed


def record_outcomes(
    conn: Connection,
    submitted: Sequence[Submitted],
    retries: Sequence[Retry],
    failures: Sequence[Failure],
    receipts: Sequence[IncomingReceipt],
    now: int,
    zone: ZoneInfo,
) -> ReceiptOutcome:
    """Everything the dispatcher learnt since its last write, in one transaction: submits
    first, so that receipts in the same batch find their ids and receipts that came earlier
    are matched; then the reports of every message that became final go to the callback
    outbox."""
    rollups.count_sent(conn, submitted, now)  # before the move: it counts the messages that move
    early = record_submitted(conn, submitted, now)
    reschedule(conn, retries)
    finished = fail_unsent(conn, failures, now)
    outcome = apply_receipts(conn, receipts, now)
    outcome.matched += early.matched
    outcome.receipts.update(early.receipts)
    outcome.submit_to_final_ms += early.submit_to_final_ms
    outcome.finished = early.finished + finished + outcome.finished
    rollups.count_finished(conn, outcome.finished, now)
    outcome.callbacks = queue_callbacks(conn, outcome.finished, now, zone)
    if any(f.state == BLACKLISTED for f in failures) or any(r.state == BLACKLISTED for r in receipts):
        inbound.list_blacklisted(conn, outcome.finished, now)
    return outcome
