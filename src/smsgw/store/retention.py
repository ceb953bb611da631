"""Housekeeping of the delivery tables: messages no carrier took before they expired
(refunded), messages whose receipt never came, and rows nothing needs any more.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import delete, literal_column, or_, select, text, update
from sqlalchemy.engine import Connection

from ..domain.states import DeliveryState
from . import rollups
from .acceptance import IDEMPOTENCY_TTL_MS
from .callbacks import queue_callbacks
from .delivery_common import NO_RECEIPT, SCHEDULED, SENT
from .outcomes import EXPIRED, Failure, fail_unsent
from .receipts import REMATCH_WINDOW_MS, ReceiptOutcome
from .schema import (
    callbacks,
    idempotency_keys,
    messages,
    unmatched_receipt_keys,
    unmatched_receipts,
)


def expire_overdue(conn: Connection, now: int, limit: int) -> list[int]:
    """Messages no dispatcher could hand to a carrier before they expired: AbsentSubscriber
    and refunded. Leased messages are left to their lease holder."""
    ids = (
        conn.execute(
            select(messages.c.id)
            .where(
                messages.c.state == SCHEDULED,
                messages.c.expires_at < now,
                or_(messages.c.lease_until.is_(None), messages.c.lease_until < now),
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )
    failures = [Failure(i, int(DeliveryState.ABSENT_SUBSCRIBER), EXPIRED, keeps_last_error=True) for i in ids]
    return fail_unsent(conn, failures, now)


# SQLite's planner prefers the queue index's equality on state over the partial index's range,
# and would read every message waiting for a receipt: it is told which index to use.
_UNRECEIPTED_SQLITE = text(
    f"SELECT id FROM messages INDEXED BY ix_messages_awaiting_receipt WHERE state = {SENT} AND expires_at < :cutoff LIMIT :limit"
)


def close_unreceipted(conn: Connection, now: int, grace_ms: int, limit: int) -> list[int]:
    """Messages the carrier took whose receipt has not come by the end of their validity plus
    `grace_ms`: final (SentToNetwork, as the providers report it), no longer waiting for a
    receipt. Not refunded: the carrier took them. Returns their ids."""
    cutoff = now - grace_ms
    if conn.dialect.name == "sqlite":
        ids = list(conn.execute(_UNRECEIPTED_SQLITE, {"cutoff": cutoff, "limit": limit}).scalars())
    else:
        # The literal state matches the partial index's condition, so only waiting messages are read.
        ids = list(
            conn.execute(
                select(messages.c.id)
                .where(messages.c.state == literal_column(str(SENT)), messages.c.expires_at < cutoff)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
    if not ids:
        return []
    return list(
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(ids), messages.c.state == SENT)
            .values(state=NO_RECEIPT, done_at=now, error="no receipt by the end of the validity period")
            .returning(messages.c.id)
        ).scalars()
    )


DELIVERED_CALLBACK_RETENTION_MS = 7 * 86_400_000
UNMATCHED_RECEIPT_RETENTION_MS = 30 * 86_400_000


def purge(conn: Connection, now: int) -> None:
    """Drops what nothing needs any more: idempotency answers past their 24 hours, callbacks
    delivered a week ago, the keys of unmatched receipts too old to match, unmatched receipts
    a month old."""
    conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL_MS))
    conn.execute(
        delete(callbacks).where(
            or_(callbacks.c.delivered_at < now - DELIVERED_CALLBACK_RETENTION_MS, callbacks.c.given_up_at < now - DELIVERED_CALLBACK_RETENTION_MS)
        )
    )
    conn.execute(delete(unmatched_receipt_keys).where(unmatched_receipt_keys.c.received_at < now - REMATCH_WINDOW_MS))
    conn.execute(delete(unmatched_receipts).where(unmatched_receipts.c.received_at < now - UNMATCHED_RECEIPT_RETENTION_MS))


def sweep(conn: Connection, now: int, zone: ZoneInfo, receipt_grace_ms: int, limit: int = 1000) -> ReceiptOutcome:
    """Housekeeping: expire what no carrier took in time (refunded; a scan of the whole queue,
    so the dispatcher asks for it rarely), close what the carrier took but never sent a
    receipt for, and purge old rows. `finished` holds at most `limit` ids of each kind: a
    full batch means there may be more."""
    outcome = ReceiptOutcome()
    outcome.finished = expire_overdue(conn, now, limit) + close_unreceipted(conn, now, receipt_grace_ms, limit)
    purge(conn, now)
    rollups.count_finished(conn, outcome.finished, now)
    outcome.callbacks = queue_callbacks(conn, outcome.finished, now, zone)
    return outcome
