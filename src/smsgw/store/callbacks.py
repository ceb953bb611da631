"""The callback outbox: the final delivery reports of partners that registered a callback URL,
leased to the callback sender, and what became of each POST.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, exists, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..domain.reports import callback_body
from .prepared import Prepared, PreparedIn
from .schema import (
    callbacks,
    messages,
    partners,
    smpp_receipts,
)

_ANY_CALLBACK_URL = Prepared(lambda: select(partners.c.id).where(partners.c.callback_url.is_not(None)).limit(1))
_REPORTS_IN = PreparedIn(
    lambda names: (
        select(
            messages.c.id,
            messages.c.partner_id,
            messages.c.clientsmsid,
            messages.c.msisdn,
            messages.c.state,
            messages.c.created_at,
            messages.c.done_at,
            partners.c.callback_url,
        )
        .join(partners, partners.c.id == messages.c.partner_id)
        # Messages submitted over the partner SMPP server get their receipt by deliver_sm instead.
        .where(messages.c.id.in_(names), partners.c.callback_url.is_not(None), ~exists().where(smpp_receipts.c.message_id == messages.c.id))
    )
)


def queue_callbacks(conn: Connection, message_ids: Sequence[int], now: int, zone: ZoneInfo) -> int:
    """Writes the delivery report of each finished message to the callback outbox, for
    partners that registered a callback URL."""
    if not message_ids or not _ANY_CALLBACK_URL.all(conn):
        return 0
    rows = []
    for row in _REPORTS_IN.rows(conn, sorted(set(message_ids))):
        message_id, partner_id, clientsmsid, msisdn, state, created_at, done_at, url = row
        body = callback_body(message_id, clientsmsid, msisdn, state, created_at, done_at or now, zone)
        rows.append({"partner_id": partner_id, "message_id": message_id, "url": url, "body": body, "next_attempt_at": now, "created_at": now})
    if rows:
        conn.execute(insert(callbacks), rows)
    return len(rows)


@dataclass(frozen=True)
class DueCallback:
    id: int
    partner_id: str
    url: str | None  # the partner's callback URL now (None: removed since it was queued)
    body: bytes
    attempts: int
    created_at: int
    secret: str | None
    allow_private: bool = False  # the partner's URLs may lead to private addresses


# Neither delivered nor given up: still to be sent.
OPEN_CALLBACK = (callbacks.c.delivered_at.is_(None), callbacks.c.given_up_at.is_(None))


def claim_callbacks(
    conn: Connection, now: int, limit: int, lease_ms: int, per_partner: int | None = None, room: dict[str, int] | None = None
) -> list[DueCallback]:
    """Leases up to `limit` due callbacks, oldest first, at most `per_partner` of one partner
    and at most `room[partner]` of a partner that has some in flight already (none of one with
    no room), so that one partner's backlog never fills the claim. Each carries the partner's
    current URL and secret: fixing a URL fixes the queue."""
    room = room or {}
    full = sorted(partner for partner, free in room.items() if free <= 0)
    conditions = [*OPEN_CALLBACK, callbacks.c.next_attempt_at <= now, or_(callbacks.c.lease_until.is_(None), callbacks.c.lease_until < now)]
    if full:
        conditions.append(callbacks.c.partner_id.not_in(full))
    # A few times the limit, so that a partner who is over its share leaves room for others.
    candidates = conn.execute(
        select(callbacks.c.id, callbacks.c.partner_id)
        .where(*conditions)
        .order_by(callbacks.c.next_attempt_at, callbacks.c.id)
        .limit(limit * 4)
        .with_for_update(skip_locked=True)
    ).all()
    taken: dict[str, int] = {}
    chosen: list[int] = []
    for callback_id, partner_id in candidates:
        share = room.get(partner_id, per_partner if per_partner is not None else limit)
        if taken.get(partner_id, 0) < share:
            taken[partner_id] = taken.get(partner_id, 0) + 1
            chosen.append(callback_id)
            if len(chosen) == limit:
                break
    if not chosen:
        return []
    rows = conn.execute(
        update(callbacks)
        .where(callbacks.c.id.in_(chosen))
        .values(lease_until=now + lease_ms)
        .returning(callbacks.c.id, callbacks.c.partner_id, callbacks.c.body, callbacks.c.attempts, callbacks.c.created_at)
    ).all()
    targets = {
        p.id: (p.callback_url, p.callback_secret, bool(p.callback_allow_private))
        for p in conn.execute(
            select(partners.c.id, partners.c.callback_url, partners.c.callback_secret, partners.c.callback_allow_private).where(
                partners.c.id.in_(sorted(taken))
            )
        )
    }
    due = []
    for r in sorted(rows, key=lambda row: row.id):
        url, secret, allow_private = targets.get(r.partner_id, (None, None, False))
        due.append(DueCallback(r.id, r.partner_id, url, bytes(r.body), r.attempts, r.created_at, secret, allow_private))
    return due


def callbacks_delivered(conn: Connection, ids: Sequence[int], now: int) -> None:
    if ids:
        conn.execute(
            update(callbacks).where(callbacks.c.id.in_(list(ids))).values(delivered_at=now, lease_until=None, attempts=callbacks.c.attempts + 1)
        )


def callbacks_failed(conn: Connection, items: Sequence[tuple[int, int, str]]) -> None:
    """(id, next attempt at, error) for each callback that got no 2xx."""
    if items:
        conn.execute(
            update(callbacks)
            .where(callbacks.c.id == bindparam("c_id"))
            .values(next_attempt_at=bindparam("c_next"), last_error=bindparam("c_error"), lease_until=None, attempts=callbacks.c.attempts + 1),
            [{"c_id": i, "c_next": n, "c_error": e[:200]} for i, n, e in items],
        )


def callbacks_given_up(conn: Connection, items: Sequence[tuple[int, int, str]], now: int) -> None:
    """(id, attempts made, reason) for each callback that will not be sent again."""
    if items:
        conn.execute(
            update(callbacks)
            .where(callbacks.c.id == bindparam("c_id"))
            .values(given_up_at=now, last_error=bindparam("c_error"), lease_until=None, attempts=bindparam("c_attempts")),
            [{"c_id": i, "c_attempts": a, "c_error": e[:200]} for i, a, e in items],
        )


def record_callback_results(
    conn: Connection, delivered: Sequence[int], failed: Sequence[tuple[int, int, str]], given_up: Sequence[tuple[int, int, str]], now: int
) -> None:
    callbacks_delivered(conn, delivered, now)
    callbacks_failed(conn, failed)
    callbacks_given_up(conn, given_up, now)


def record_and_claim_callbacks(
    conn: Connection,
    delivered: Sequence[int],
    failed: Sequence[tuple[int, int, str]],
    given_up: Sequence[tuple[int, int, str]],
    now: int,
    limit: int,
    lease_ms: int,
    per_partner: int,
    room: dict[str, int],
) -> list[DueCallback]:
    """The callback sender's one transaction per round: outcomes of the POSTs that ended,
    then the next claim (none when `limit` is 0)."""
    record_callback_results(conn, delivered, failed, given_up, now)
    return claim_callbacks(conn, now, limit, lease_ms, per_partner, room) if limit > 0 else []
