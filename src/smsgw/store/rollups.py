"""The console's figures kept apart from messages. The roller indexes messages by number
(message_numbers) and counts them per hour, partner and network (message_rollups), off the
acceptance path, so that accepting a message writes no index the console needs. Delivery
outcomes (outcome_rollups) are counted instead by the transactions that move the messages
(count_sent, count_finished), at the end of this module.

Its mark (roll_marks) says how far it got: every message with an id below `next_id` is indexed
and counted, once. Each step rolls the next id range up to a chunk and moves the mark in the
same transaction, so a roller killed mid-step loses nothing and a step is never counted twice.

Ids are handed out from blocks (store.py), several processes at once, and a message commits
some time after its id was handed out, so the roller must know when a range is complete. The
id counter read at time T bounds every id handed out before T; a block is used for at most
ID_BLOCK_SECONDS, and an accepting transaction commits within seconds of its ids: once SETTLE_MS
has passed since T, every message below that counter that will ever exist has been committed.
Messages above the mark (the last minute or two) are found by the searches' scan of the ids
above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, insert, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .prepared import Prepared
from .schema import id_blocks, message_numbers, message_rollups, messages, outcome_rollups, roll_marks
from .store import ID_BLOCK_SECONDS

MARK = "messages"
HOUR_MS = 3600 * 1000
# The id block's lifetime plus a generous bound on how long an accepting request holds ids
# before its transaction commits (a store that stalls longer answers it with an error).
SETTLE_MS = int(ID_BLOCK_SECONDS * 1000) + 50_000
# Rows per step: one short transaction, and a sort of this many number entries.
ROLL_CHUNK = 20_000

# Run with tuples through the driver (prepared.py): at 20,000 rows a step, building and
# processing Core parameters would cost more than the database's work.
_NEXT_MESSAGES = Prepared(
    lambda: (
        select(
            messages.c.id, messages.c.partner_id, messages.c.msisdn, messages.c.network_id, messages.c.parts, messages.c.cost, messages.c.created_at
        )
        .where(messages.c.id >= bindparam("first"), messages.c.id < bindparam("limit"))
        .order_by(messages.c.id)
        .limit(bindparam("chunk"))
    )
)
_ADD_NUMBER = Prepared(
    lambda: insert(message_numbers).values(msisdn=bindparam("msisdn"), partner_id=bindparam("partner_id"), message_id=bindparam("message_id"))
)


@dataclass(frozen=True)
class RollStep:
    held: bool  # False: another roller holds the lease, nothing was done
    rolled: int  # messages indexed and counted by this step
    next_id: int  # the mark after it
    more: bool  # a full chunk was rolled: the next step need not wait


def roll_step(conn: Connection, owner: str, now: int, lease_ms: int, settle_ms: int = SETTLE_MS, chunk: int = ROLL_CHUNK) -> RollStep:
    """One step of the roller as `owner`: takes (or keeps) the lease, and rolls the messages
    from the mark up to `chunk` of them within the settled range."""
    taken = conn.execute(
        update(roll_marks)
        .where(
            roll_marks.c.name == MARK,
            or_(roll_marks.c.lease_owner.is_(None), roll_marks.c.lease_owner == owner, roll_marks.c.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + lease_ms)
        .returning(roll_marks.c.next_id, roll_marks.c.pending_limit, roll_marks.c.pending_since)
    ).first()
    if taken is None:
        return RollStep(False, 0, 0, False)
    next_id, limit, since = int(taken.next_id), taken.pending_limit, taken.pending_since
    if limit is None or next_id >= limit:
        limit = conn.execute(select(id_blocks.c.next_value).where(id_blocks.c.name == "message")).scalar_one()
        since = now
        conn.execute(update(roll_marks).where(roll_marks.c.name == MARK).values(pending_limit=limit, pending_since=since))
    if now < since + settle_ms or next_id >= limit:
        return RollStep(True, 0, next_id, False)
    rows = _NEXT_MESSAGES.all(conn, first=next_id, limit=limit, chunk=chunk)
    full = len(rows) == chunk
    if rows:
        # Sorted as the index is, so that its pages are written in order, not at random.
        _ADD_NUMBER.many(conn, ({"msisdn": m, "partner_id": p, "message_id": i} for i, p, m, *_ in sorted(rows, key=lambda r: (r[2], r[1], r[0]))))
        _add_to_rollups(conn, rows)
    next_id = int(rows[-1][0]) + 1 if full else int(limit)
    conn.execute(update(roll_marks).where(roll_marks.c.name == MARK).values(next_id=next_id))
    return RollStep(True, len(rows), next_id, full)


def release(conn: Connection, owner: str) -> None:
    """Gives the lease up, so that another dispatcher rolls without waiting for it to run out."""
    conn.execute(update(roll_marks).where(roll_marks.c.name == MARK, roll_marks.c.lease_owner == owner).values(lease_owner=None, lease_until=None))


def _add_to_rollups(conn: Connection, rows: Sequence[Any]) -> None:
    sums: dict[tuple[int, str, int], list[int]] = {}
    for _, partner_id, _, network_id, parts, cost, created_at in rows:
        total = sums.setdefault((created_at // HOUR_MS * HOUR_MS, partner_id, network_id), [0, 0, 0])
        total[0] += 1
        total[1] += parts
        total[2] += cost
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(message_rollups)
    statement = statement.on_conflict_do_update(
        index_elements=[message_rollups.c.hour, message_rollups.c.partner_id, message_rollups.c.network_id],
        set_={
            "messages": message_rollups.c.messages + statement.excluded.messages,
            "parts": message_rollups.c.parts + statement.excluded.parts,
            "cost": message_rollups.c.cost + statement.excluded.cost,
        },
    )
    conn.execute(
        statement,
        [
            {"hour": h, "partner_id": p, "network_id": n, "messages": c, "parts": parts, "cost": cost}
            for (h, p, n), (c, parts, cost) in sorted(sums.items())
        ],
    )


def mark(conn: Connection) -> int:
    """The roll mark: messages with lower ids are in message_numbers and message_rollups."""
    return int(conn.execute(select(roll_marks.c.next_id).where(roll_marks.c.name == MARK)).scalar_one())


def accepted_per_hour(conn: Connection, partner_id: str | None, since: int) -> list[tuple[int, int, int, int]]:
    """(hour start, messages, parts, cost) per hour from `since`'s hour on, of one partner or
    of all: the rollups up to the mark."""
    query = (
        select(message_rollups.c.hour, func.sum(message_rollups.c.messages), func.sum(message_rollups.c.parts), func.sum(message_rollups.c.cost))
        .where(message_rollups.c.hour >= since // HOUR_MS * HOUR_MS)
        .group_by(message_rollups.c.hour)
        .order_by(message_rollups.c.hour)
    )
    if partner_id is not None:
        query = query.where(message_rollups.c.partner_id == partner_id)
    return [(int(h), int(m), int(p), int(c)) for h, m, p, c in conn.execute(query).all()]


# -- delivery outcomes ----------------------------------------------------------------------------

SCHEDULED = 1  # DeliveryState.SCHEDULED: the only state a submit moves a message from
SENT = 2  # DeliveryState.SENT_TO_NETWORK: the state of a count_sent row
_OUTCOME_KEY = ("hour", "partner_id", "network_id", "smsc", "state")


def _add_outcomes(conn: Connection, source: Any) -> Any:
    """INSERT of `source`'s rows (the key, messages, parts) that adds to the counts already there."""
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(outcome_rollups)
    if source is not None:
        statement = statement.from_select([*_OUTCOME_KEY, "messages", "parts"], source)
    return statement.on_conflict_do_update(
        index_elements=[outcome_rollups.c[name] for name in _OUTCOME_KEY],
        set_={
            "messages": outcome_rollups.c.messages + statement.excluded.messages,
            "parts": outcome_rollups.c.parts + statement.excluded.parts,
        },
    )


def count_sent(conn: Connection, submitted: Iterable[Any], now: int) -> None:
    """Counts, in the hour of `now`, the messages of these submits (anything with `message_id`
    and `connector`) that a carrier's acceptance is about to move from Scheduled to
    SentToNetwork: called in the moving transaction just before the move, so a message
    submitted twice (a lease ran out mid-send) is counted once, by the move that happens. On
    PostgreSQL the rows are locked as they are read, so a concurrent move of the same message
    waits and then finds it moved."""
    connectors: dict[int, str] = {}
    for item in submitted:
        connectors.setdefault(item.message_id, item.connector)
    if not connectors:
        return
    rows = conn.execute(
        select(messages.c.id, messages.c.partner_id, messages.c.network_id, messages.c.parts)
        .where(messages.c.id.in_(sorted(connectors)), messages.c.state == SCHEDULED)
        .with_for_update()
    ).all()
    hour = now // HOUR_MS * HOUR_MS
    sums: dict[tuple[str, int, str], list[int]] = {}
    for message_id, partner_id, network_id, parts in rows:
        total = sums.setdefault((partner_id, network_id, connectors[message_id][:64]), [0, 0])
        total[0] += 1
        total[1] += parts
    if sums:
        # In key order, as every writer of these rows takes them, so that two writers never wait
        # for each other in a circle.
        conn.execute(
            _add_outcomes(conn, None),
            [
                {"hour": hour, "partner_id": p, "network_id": n, "smsc": c, "state": SENT, "messages": m, "parts": parts}
                for (p, n, c), (m, parts) in sorted(sums.items())
            ],
        )


def count_finished(conn: Connection, message_ids: Sequence[int], now: int) -> None:
    """Counts, in the hour of `now`, these messages under the final state they have: called in
    the transaction that made them final, with exactly the ids it moved (whose UPDATEs
    required them open), so each final state is counted once. One INSERT ... SELECT."""
    if not message_ids:
        return
    smsc = func.coalesce(messages.c.connector, literal_column("''"))
    key = (messages.c.partner_id, messages.c.network_id, smsc, messages.c.state)
    source = (
        select(literal_column(str(now // HOUR_MS * HOUR_MS)), *key, func.count(), func.sum(messages.c.parts))
        .where(messages.c.id.in_(sorted(set(message_ids))))
        .group_by(*key)
        .order_by(*key)  # the rows' lock order (count_sent)
    )
    conn.execute(_add_outcomes(conn, source))


@dataclass(frozen=True)
class OutcomeCount:
    partner_id: str
    network_id: int
    smsc: str
    state: int
    messages: tuple[int, ...]  # one per window asked for, in their order


def outcome_counts(conn: Connection, windows: Sequence[int]) -> list[OutcomeCount]:
    """The outcome counts per partner, network, SMSC and state, summed over each window (the
    hours from that hour's start on): one read of the rows of the widest window."""
    sums = [func.sum(case((outcome_rollups.c.hour >= since // HOUR_MS * HOUR_MS, outcome_rollups.c.messages), else_=0)) for since in windows]
    key = (outcome_rollups.c.partner_id, outcome_rollups.c.network_id, outcome_rollups.c.smsc, outcome_rollups.c.state)
    query = select(*key, *sums).where(outcome_rollups.c.hour >= min(windows) // HOUR_MS * HOUR_MS).group_by(*key)
    return [OutcomeCount(p, int(n), c, int(s), tuple(int(v) for v in values)) for p, n, c, s, *values in conn.execute(query).all()]


def outcomes_per_hour(conn: Connection, since: int) -> list[tuple[int, int, int]]:
    """(hour start, state, messages) from `since`'s hour on, every partner, network and SMSC."""
    query = (
        select(outcome_rollups.c.hour, outcome_rollups.c.state, func.sum(outcome_rollups.c.messages))
        .where(outcome_rollups.c.hour >= since // HOUR_MS * HOUR_MS)
        .group_by(outcome_rollups.c.hour, outcome_rollups.c.state)
        .order_by(outcome_rollups.c.hour)
    )
    return [(int(h), int(s), int(m)) for h, s, m in conn.execute(query).all()]


def accepted_counts(conn: Connection, windows: Sequence[int]) -> list[tuple[str, int, tuple[int, ...]]]:
    """(partner, network, messages accepted in each window) from message_rollups: the messages
    below the roll mark."""
    sums = [func.sum(case((message_rollups.c.hour >= since // HOUR_MS * HOUR_MS, message_rollups.c.messages), else_=0)) for since in windows]
    key = (message_rollups.c.partner_id, message_rollups.c.network_id)
    query = select(*key, *sums).where(message_rollups.c.hour >= min(windows) // HOUR_MS * HOUR_MS).group_by(*key)
    return [(p, int(n), tuple(int(v) for v in values)) for p, n, *values in conn.execute(query).all()]
