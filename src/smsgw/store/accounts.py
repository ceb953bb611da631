"""Resellers and partner controls in the store: child accounts, credit transfers, cancelling a
scheduled message, per-partner rate limits (token buckets) and IP allow-lists.

Every operation is one transaction; the exactness promises (no balance below zero, a cancel
never racing a send, a limit shared by every process) come from conditional UPDATEs, which
both SQLite and PostgreSQL apply one row at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..domain.money import units_for_amount
from ..domain.states import DeliveryState
from . import rollups
from .acceptance import remember_answer
from .errors import IdempotencyConflict, NotFound
from .ledger_entries import ledger_entry, write_entry
from .schema import ledger, messages, partners, rate_buckets
from .store import Store, now_ms

SCHEDULED = int(DeliveryState.SCHEDULED)
CANCELLED = int(DeliveryState.CANCELLED)
# A limited partner may send one second's budget at once (and a request larger than that when
# the bucket is full, paid back before the next one passes).
BURST_MS = 1000


class _Refused(Exception):
    """Rolls a transfer's transaction back and carries the answer out of it."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer


@dataclass(frozen=True)
class ChildView:
    id: str
    name: str
    status: str
    balance: int
    rate: int
    messages_accepted: int
    units_charged: int
    messages_refunded: int
    units_refunded: int
    units_received: int


@dataclass(frozen=True)
class Transferred:
    units: int
    child_balance_before: int
    child_balance_after: int
    reseller_balance_after: int


@dataclass(frozen=True)
class NotChild:
    """The named account exists but is not the caller's child."""


@dataclass(frozen=True)
class NoSuchAccount:
    """No account has the named id (the contract's 4093)."""


@dataclass(frozen=True)
class ResellerShort:
    """The reseller's balance cannot pay for the units."""

    balance: int
    required: int


@dataclass(frozen=True)
class BuysNothing:
    """The amount is less than a hundredth of a unit at the child's rate."""


@dataclass(frozen=True)
class Cancelled:
    message_id: int
    refunded: int
    balance: int


# -- child accounts ------------------------------------------------------------------------------


def children(conn: Connection, parent_id: str, since: int) -> list[ChildView]:
    """The reseller's children with their balances, and what each did since `since` (Unix ms),
    from the ledger (one entry per request, by partner and time): never from scanning
    messages, and never their keys."""
    rows = child_accounts(conn, parent_id)
    if not rows:
        return []
    ids = [r.id for r in rows]
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for partner_id, kind, count, amount in conn.execute(
        select(ledger.c.partner_id, ledger.c.kind, func.sum(ledger.c.message_count), func.sum(ledger.c.amount))
        .where(ledger.c.partner_id.in_(ids), ledger.c.created_at >= since)
        .group_by(ledger.c.partner_id, ledger.c.kind)
    ).all():
        totals[(partner_id, kind)] = (int(count or 0), int(amount or 0))
    views = []
    for r in rows:
        charged = totals.get((r.id, "charge"), (0, 0))
        refunded = totals.get((r.id, "refund"), (0, 0))
        received = totals.get((r.id, "transfer_in"), (0, 0))
        views.append(ChildView(r.id, r.name, r.status, r.balance, r.rate, charged[0], -charged[1], refunded[0], refunded[1], received[1]))
    return views


# -- credit transfers ------------------------------------------------------------------------------


async def transfer(
    store: Store,
    reseller_id: str,
    child_id: str,
    amount: int,
    render: Callable[[Transferred], bytes],
    idempotency: tuple[str, str] | None = None,
) -> tuple[Transferred | NotChild | NoSuchAccount | BuysNothing | ResellerShort, bytes | None]:
    """Moves the units `amount` (hundredths of money) buys at the child's rate from the
    reseller's balance to the child's: both balances, two ledger entries naming each other and
    the Idempotency-Key record (key, body SHA-256) with the answer `render` makes, in one
    transaction. Returns the outcome and, on success, the rendered answer. Raises
    IdempotencyConflict when a concurrent request with the same key won."""

    def move(conn: Connection) -> tuple[Transferred, bytes]:
        now = now_ms()
        child = conn.execute(select(partners.c.rate).where(partners.c.id == child_id, partners.c.parent_id == reseller_id)).first()
        if child is None:
            exists = conn.execute(select(partners.c.id).where(partners.c.id == child_id)).first() is not None
            raise _Refused(NotChild() if exists else NoSuchAccount())
        units = units_for_amount(amount, child.rate)
        if units <= 0:
            raise _Refused(BuysNothing())
        # The reseller's row first, then the child's: every transfer locks down the tree in
        # the same order, so two transfers never wait on each other in a circle.
        debited = conn.execute(
            update(partners)
            .where(partners.c.id == reseller_id, partners.c.balance >= units)
            .values(balance=partners.c.balance - units)
            .returning(partners.c.balance)
        ).first()
        if debited is None:
            balance = conn.execute(select(partners.c.balance).where(partners.c.id == reseller_id)).scalar_one()
            raise _Refused(ResellerShort(balance, units))
        credited = conn.execute(
            update(partners).where(partners.c.id == child_id).values(balance=partners.c.balance + units).returning(partners.c.balance)
        ).scalar_one()
        out_id = write_entry(conn, ledger_entry(reseller_id, -units, debited.balance, "transfer_out", f"credit to {child_id}", now))
        in_id = write_entry(conn, ledger_entry(child_id, units, credited, "transfer_in", f"credit from {reseller_id}", now, counterpart_id=out_id))
        conn.execute(update(ledger).where(ledger.c.id == out_id).values(counterpart_id=in_id))
        done = Transferred(units, credited - units, credited, debited.balance)
        body = render(done)
        if idempotency is not None:
            remember_answer(conn, reseller_id, (idempotency[0], idempotency[1], body), now)
        return done, body

    try:
        done, body = await store.write(move)
    except _Refused as refused:
        return refused.answer, None
    except IntegrityError:
        if idempotency is not None and await store.find_answer(reseller_id, idempotency[0]) is not None:
            raise IdempotencyConflict(idempotency[0]) from None
        raise
    return done, body


# -- cancelling --------------------------------------------------------------------------------------


def cancel_scheduled(conn: Connection, partner_id: str, message_id: int) -> Cancelled | None:
    """Cancels the partner's message if it is still Scheduled and no dispatcher holds it, and
    refunds its cost through the ledger; None for anything else.

    The test is the UPDATE's own condition on the state and the lease owner, the same columns a
    dispatcher's claim sets: whichever of the two commits first wins, and the other finds the
    row changed (PostgreSQL re-reads a row it waited for). A lease that ran out still counts as
    held: its dispatcher may have died after handing the message to a carrier."""
    now = now_ms()
    row = conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.partner_id == partner_id, messages.c.state == SCHEDULED, messages.c.lease_owner.is_(None))
        .values(state=CANCELLED, done_at=now, error="cancelled by the partner")
        .returning(messages.c.cost)
    ).first()
    if row is None:
        return None
    rollups.count_finished(conn, [message_id], now)
    balance = conn.execute(
        update(partners).where(partners.c.id == partner_id).values(balance=partners.c.balance + row.cost).returning(partners.c.balance)
    ).scalar_one()
    if row.cost:
        write_entry(conn, ledger_entry(partner_id, row.cost, balance, "refund", f"message {message_id} cancelled", now, message_count=1))
    return Cancelled(message_id, row.cost, balance)


# -- rate limits ----------------------------------------------------------------------------------------


def take_tokens(conn: Connection, partner_id: str, mps: int, parts: int) -> float:
    """Takes `parts` from the partner's bucket (refilled at `mps` parts per second, holding at
    most a second's worth) and returns 0, or leaves it alone and returns the seconds until the
    request could pass. A request larger than the bucket passes when the bucket is full and
    leaves it in debt, so the rate over time stays `mps` whatever the request sizes.

    One conditional UPDATE on the partner's row: exact across processes and databases."""
    now = now_ms()
    capacity = max(mps * BURST_MS, 1000)  # thousandths of a part
    need = parts * 1000
    threshold = min(need, capacity)
    # Another process may have written a later time than this one's `now` (it took the row
    # first, or its clock is ahead): time never runs backwards for the bucket.
    later = rate_buckets.c.updated_at < now
    refilled = rate_buckets.c.tokens + case((later, (now - rate_buckets.c.updated_at) * mps), else_=0)
    level = case((refilled > capacity, capacity), else_=refilled)
    row = conn.execute(
        update(rate_buckets)
        .where(and_(rate_buckets.c.partner_id == partner_id, level >= threshold))
        .values(tokens=level - need, updated_at=case((later, now), else_=rate_buckets.c.updated_at))
        .returning(rate_buckets.c.tokens)
    ).first()
    if row is not None:
        return 0.0
    current = conn.execute(select(rate_buckets.c.tokens, rate_buckets.c.updated_at).where(rate_buckets.c.partner_id == partner_id)).first()
    if current is None:
        # The limit was set without a bucket (it is created with it): start one, full.
        conn.execute(insert(rate_buckets).values(partner_id=partner_id, tokens=capacity - need, updated_at=now))
        return 0.0
    have = min(capacity, current.tokens + max(0, now - current.updated_at) * mps)
    return (threshold - have) / (mps * 1000)


def set_rate_limit(conn: Connection, partner_id: str, mps: int | None) -> None:
    """Sets (None: clears) the partner's limit; a new bucket starts full."""
    if conn.execute(update(partners).where(partners.c.id == partner_id).values(max_mps=mps)).rowcount == 0:
        raise NotFound(f"partner {partner_id} does not exist")
    conn.execute(delete(rate_buckets).where(rate_buckets.c.partner_id == partner_id))
    if mps is not None:
        conn.execute(insert(rate_buckets).values(partner_id=partner_id, tokens=max(mps * BURST_MS, 1000), updated_at=now_ms()))


def set_allowed_ips(conn: Connection, partner_id: str, networks: str | None) -> None:
    """Sets (None: clears) the comma-separated CIDRs the partner's requests may come from."""
    if conn.execute(update(partners).where(partners.c.id == partner_id).values(allowed_ips=networks)).rowcount == 0:
        raise NotFound(f"partner {partner_id} does not exist")


def child_accounts(conn: Connection, parent_id: str) -> list[Any]:
    """Id, name, status, balance and rate of each of the reseller's children, by id."""
    return list(
        conn.execute(
            select(partners.c.id, partners.c.name, partners.c.status, partners.c.balance, partners.c.rate)
            .where(partners.c.parent_id == parent_id)
            .order_by(partners.c.id)
        ).all()
    )
