"""The store's side of upstream routes (connectors/upstream.py): each sendbulk request is
written before it is sent, so that a message whose answer was lost goes again in the same
request after any restart; and the upstream ids still waiting for a final status, so that
polling `getdlr` resumes where a stopped dispatcher left it."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from . import outcomes
from .acceptance import IDEMPOTENCY_TTL_MS
from .delivery_common import OPEN_STATES, SENT
from .receipts import IncomingReceipt, ReceiptOutcome
from .schema import message_parts, messages, receipt_keys, upstream_request_messages, upstream_requests

# A request is sent again only while the upstream still keeps its answer for the key (24 h by
# the contract); older ones are purged, a little before that.
REQUEST_RETENTION_MS = IDEMPOTENCY_TTL_MS - 3600 * 1000


def requests_of(conn: Connection, message_ids: Sequence[int], now: int) -> dict[int, tuple[str, str]]:
    """Message id -> (Idempotency-Key, entries JSON) of the request it last went out in, for
    those messages that have one still within the upstream's idempotency window."""
    if not message_ids:
        return {}
    rows = conn.execute(
        select(upstream_request_messages.c.message_id, upstream_requests.c.idempotency_key, upstream_requests.c.entries)
        .join(upstream_requests, upstream_requests.c.idempotency_key == upstream_request_messages.c.idempotency_key)
        .where(upstream_request_messages.c.message_id.in_(list(message_ids)), upstream_requests.c.created_at >= now - REQUEST_RETENTION_MS)
    ).all()
    return {message_id: (key, entries) for message_id, key, entries in rows}


def remember_request(conn: Connection, key: str, route: str, entries: str, message_ids: Sequence[int], now: int) -> None:
    """Writes a request before it is sent; each message now belongs to it alone."""
    conn.execute(insert(upstream_requests).values(idempotency_key=key, route=route, entries=entries, created_at=now))
    conn.execute(delete(upstream_request_messages).where(upstream_request_messages.c.message_id.in_(list(message_ids))))
    conn.execute(insert(upstream_request_messages), [{"message_id": message_id, "idempotency_key": key} for message_id in message_ids])


def forget_messages(conn: Connection, message_ids: Sequence[int]) -> None:
    """The upstream answered these with a refusal or a retry: nothing of them is stored there,
    so their next attempt goes in a new request with a new key."""
    if message_ids:
        conn.execute(delete(upstream_request_messages).where(upstream_request_messages.c.message_id.in_(list(message_ids))))


def purge(conn: Connection, now: int) -> None:
    """Drops requests past the upstream's idempotency window, and their messages."""
    old = select(upstream_requests.c.idempotency_key).where(upstream_requests.c.created_at < now - REQUEST_RETENTION_MS)
    conn.execute(delete(upstream_request_messages).where(upstream_request_messages.c.idempotency_key.in_(old)))
    conn.execute(delete(upstream_requests).where(upstream_requests.c.created_at < now - REQUEST_RETENTION_MS))


def waiting_for_receipts(conn: Connection, route: str, after_id: int, limit: int) -> list[tuple[int, str]]:
    """(message id, upstream id) of this route's messages the upstream took that are not final
    yet, by message id after `after_id`: a page of those a getdlr poll still has to follow."""
    rows = conn.execute(
        select(messages.c.id, message_parts.c.smsc_message_id)
        .join(message_parts, (message_parts.c.message_id == messages.c.id) & (message_parts.c.part_no == 1))
        .where(messages.c.state == SENT, messages.c.connector == route, messages.c.id > after_id)
        .order_by(messages.c.id)
        .limit(limit)
    ).all()
    return [(message_id, upstream_id) for message_id, upstream_id in rows]


def open_messages(conn: Connection, message_ids: Sequence[int]) -> set[int]:
    """Those of these messages that are not final yet."""
    if not message_ids:
        return set()
    rows = conn.execute(select(messages.c.id, messages.c.state).where(messages.c.id.in_(list(message_ids)))).all()
    return {message_id for message_id, state in rows if state in OPEN_STATES}


def record_pushed_receipt(conn: Connection, receipt: IncomingReceipt, now: int, zone: ZoneInfo) -> ReceiptOutcome | None:
    """A delivery report the upstream pushed, recorded as a polled one; None, and nothing
    written, while no message of the route has its id. Another process may be committing that
    message's submit at this moment, unseen by this transaction: kept as an unmatched receipt,
    the report would miss it, so the upstream is to send it again instead (it retries until a 2xx)."""
    known = conn.execute(
        select(receipt_keys.c.message_id).where(receipt_keys.c.connector == receipt.connector, receipt_keys.c.key.in_(receipt.keys)).limit(1)
    ).first()
    if known is None:
        return None
    return outcomes.record_outcomes(conn, [], [], [], [receipt], now, zone)
