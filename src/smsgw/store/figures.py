"""Figures read at each metrics scrape: queue depth, open receipts and callbacks, bind leases.

Every count walks an index over a bounded range and stops at `cap` rows, so a scrape costs
the same on a store of ten million messages as on an empty one: a queue deeper than `cap`
reads as `cap`, which is all an alert needs to know.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..domain.states import PRIORITY_BULK, PRIORITY_OTP, DeliveryState
from .schema import bind_leases, callbacks, messages, smpp_inbound, smpp_receipts, unmatched_receipts

SCRAPE_COUNT_CAP = 1_000_000
QUEUE_STATES = (DeliveryState.SCHEDULED, DeliveryState.SENT_TO_NETWORK)
QUEUE_PRIORITIES = {PRIORITY_OTP: "otp", PRIORITY_BULK: "bulk"}


@dataclass(frozen=True)
class ScrapeFigures:
    queue: dict[tuple[str, str], int]  # (state description, priority name) -> messages
    unmatched_receipts: int  # waiting for a match
    callbacks_pending: int  # not yet answered with a 2xx
    bind_leases: dict[str, bool]  # SMSC name -> held by a dispatcher whose lease is current
    smpp_receipts_pending: int = 0  # receipts of messages submitted over SMPP not yet taken by an ESME
    smpp_inbound_pending: int = 0  # inbound messages owed to partners' ESMEs


def _bounded_count(conn: Connection, table, *conditions, cap: int) -> int:
    # LIMIT inside, count outside: the index range is read up to `cap` entries and no further.
    inner = select(table.c[next(iter(table.primary_key.columns)).name]).where(*conditions).limit(cap).subquery()
    return conn.execute(select(func.count()).select_from(inner)).scalar_one()


def scrape_figures(conn: Connection, now: int, cap: int = SCRAPE_COUNT_CAP) -> ScrapeFigures:
    queue = {}
    for state in QUEUE_STATES:
        for priority, priority_name in QUEUE_PRIORITIES.items():
            # (state, priority) is the leading part of ix_messages_due.
            queue[(state.description, priority_name)] = _bounded_count(
                conn, messages, messages.c.state == int(state), messages.c.priority == priority, cap=cap
            )
    unmatched = _bounded_count(conn, unmatched_receipts, unmatched_receipts.c.matched_at.is_(None), cap=cap)
    pending = _bounded_count(conn, callbacks, callbacks.c.delivered_at.is_(None), cap=cap)
    leases = {row.connector: row.lease_until > now for row in conn.execute(select(bind_leases.c.connector, bind_leases.c.lease_until))}
    smpp_receipts_pending = _bounded_count(conn, smpp_receipts, smpp_receipts.c.delivered_at.is_(None), cap=cap)
    smpp_inbound_pending = _bounded_count(conn, smpp_inbound, smpp_inbound.c.delivered_at.is_(None), cap=cap)
    return ScrapeFigures(queue, unmatched, pending, leases, smpp_receipts_pending, smpp_inbound_pending)
