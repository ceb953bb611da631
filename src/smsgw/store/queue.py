"""The delivery queue: due messages leased to a dispatcher (claimed, renewed, given back), and
the queue's figures for health and metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from ..domain.states import DeliveryState
from .callbacks import OPEN_CALLBACK
from .delivery_common import NO_RECEIPT, SCHEDULED
from .prepared import Prepared, PreparedIn
from .schema import (
    callbacks,
    messages,
    unmatched_receipts,
)


@dataclass(frozen=True)
class Claimed:
    id: int
    partner_id: str
    shortcode: str
    msisdn: str
    network_id: int
    text: str
    data_coding: int
    parts: int
    attempts: int
    expires_at: int | None
    created_at: int
    unanswered: int  # earlier submit_sm of it that got no submit_sm_resp


_CLAIM_COLUMNS = (
    messages.c.id,
    messages.c.partner_id,
    messages.c.shortcode,
    messages.c.msisdn,
    messages.c.network_id,
    messages.c.text,
    messages.c.data_coding,
    messages.c.parts,
    messages.c.attempts,
    messages.c.expires_at,
    messages.c.created_at,
    messages.c.unanswered,
)


def _claim_statement(networks: list[Any] | None):
    conditions = [
        messages.c.state == SCHEDULED,
        messages.c.due_at <= bindparam("now"),
        or_(messages.c.lease_until.is_(None), messages.c.lease_until < bindparam("now")),
    ]
    if networks is not None:
        conditions.append(messages.c.network_id.in_(networks))
    due = (
        select(messages.c.id)
        .where(*conditions)
        .order_by(messages.c.priority, messages.c.due_at, messages.c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    return (
        update(messages)
        .where(messages.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=bindparam("owner"), lease_until=bindparam("lease_until"))
        .returning(*_CLAIM_COLUMNS, messages.c.priority, messages.c.due_at)
    )


_CLAIM_ANY_NETWORK = Prepared(lambda: _claim_statement(None))
_CLAIM_NETWORKS_IN = PreparedIn(_claim_statement)


def claim_due(conn: Connection, owner: str, now: int, limit: int, lease_ms: int, network_ids: Sequence[int] | None) -> list[Claimed]:
    """Leases up to `limit` due messages of these networks (None: any) to `owner`, OTP first,
    oldest first.

    A lease that runs out (its owner died) makes the message claimable again. On PostgreSQL,
    concurrent claimers skip each other's locked rows instead of waiting on them."""
    params = {"now": now, "limit": limit, "owner": owner, "lease_until": now + lease_ms}
    if network_ids is None:
        rows = _CLAIM_ANY_NETWORK.all(conn, **params)
    else:
        rows = _CLAIM_NETWORKS_IN.rows(conn, list(network_ids), **params)
    width = len(_CLAIM_COLUMNS)
    rows.sort(key=lambda r: (r[width], r[width + 1], r[0]))
    return [Claimed(*row[:width]) for row in rows]


def release(conn: Connection, owner: str, message_ids: Sequence[int]) -> None:
    """Gives leased messages back without an attempt (the dispatcher is stopping)."""
    if message_ids:
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(list(message_ids)), messages.c.lease_owner == owner, messages.c.state == SCHEDULED)
            .values(lease_owner=None, lease_until=None)
        )


def renew_leases(conn: Connection, owner: str, message_ids: Sequence[int], until: int) -> None:
    """Extends the leases `owner` still holds on these messages."""
    for start in range(0, len(message_ids), 500):
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(list(message_ids[start : start + 500])), messages.c.lease_owner == owner, messages.c.state == SCHEDULED)
            .values(lease_until=until)
        )


# SentToNetwork is the description of two states; the final one is counted apart.
_COUNT_LABELS = {NO_RECEIPT: "SentToNetwork, no receipt (final)"}


def delivery_counts(conn: Connection) -> dict[str, int]:
    """Queue figures for health and metrics."""
    by_state: dict[int, int] = dict(conn.execute(select(messages.c.state, func.count()).group_by(messages.c.state)).all())
    open_unmatched = conn.execute(select(func.count()).select_from(unmatched_receipts).where(unmatched_receipts.c.matched_at.is_(None))).scalar_one()
    pending_callbacks = conn.execute(select(func.count()).select_from(callbacks).where(*OPEN_CALLBACK)).scalar_one()
    given_up_callbacks = conn.execute(select(func.count()).select_from(callbacks).where(callbacks.c.given_up_at.is_not(None))).scalar_one()
    counts = {_COUNT_LABELS.get(state, DeliveryState(state).description): n for state, n in by_state.items()}
    counts["unmatched receipts"] = open_unmatched
    counts["pending callbacks"] = pending_callbacks
    counts["given-up callbacks"] = given_up_callbacks
    return counts
