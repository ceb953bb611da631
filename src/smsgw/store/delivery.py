"""The store's side of delivery: the queue (claims with leases), submit outcomes, receipts,
refunds and the callback outbox. Transaction functions of a Connection, set-based so that
thousands of outcomes per second cost a handful of statements per batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Table, bindparam, delete, exists, func, insert, literal, literal_column, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement

from ..domain.reports import callback_body
from ..domain.states import DeliveryState
from . import inbound, rollups
from .prepared import Prepared, PreparedIn
from .schema import (
    callbacks,
    idempotency_keys,
    ledger,
    message_parts,
    messages,
    partners,
    receipt_keys,
    smpp_receipts,
    unmatched_receipt_keys,
    unmatched_receipts,
)
from .store import IDEMPOTENCY_TTL_MS

SCHEDULED = int(DeliveryState.SCHEDULED)
SENT = int(DeliveryState.SENT_TO_NETWORK)
OPEN_STATES = (SCHEDULED, SENT)
BLACKLISTED = int(DeliveryState.SENDER_BLACKLISTED)
# When the parts of one message end differently, the message takes the worst of them.
_SEVERITY = {
    int(DeliveryState.DELIVERED): 0,
    int(DeliveryState.UNKNOWN): 1,
    int(DeliveryState.ABSENT_SUBSCRIBER): 2,
    int(DeliveryState.SENDER_BLACKLISTED): 3,
    int(DeliveryState.DELIVERY_IMPOSSIBLE): 4,
}
# An unmatched receipt is matched to an SMSC id recorded within this long after it came; past
# that, a shared key is more likely an SMSC reusing its ids than a late submit_sm_resp.
REMATCH_WINDOW_MS = 15 * 60 * 1000


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


@dataclass(frozen=True)
class IncomingReceipt:
    connector: str
    smsc_message_id: str
    keys: list[str]
    state: int
    stat: str
    error: str | None
    done_at: int | None  # ms


@dataclass
class ReceiptOutcome:
    matched: int = 0
    unmatched: int = 0
    finished: list[int] = field(default_factory=list)  # message ids that reached a final state
    callbacks: int = 0  # delivery reports queued for partners' callback URLs
    # For metrics: (connector, receipt state, matched | unmatched | rematched) -> receipts,
    # and submit_sm -> final state in ms of each message a receipt finished.
    receipts: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    submit_to_final_ms: list[int] = field(default_factory=list)


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


def _insert_ignoring_duplicates(table: Table, *columns: str) -> _ByDialect:
    def build() -> ClauseElement:
        values: dict[str, Any] = {c: bindparam(c) for c in columns}
        return postgresql.insert(table).values(values).on_conflict_do_nothing()

    def build_sqlite() -> ClauseElement:
        values: dict[str, Any] = {c: bindparam(c) for c in columns}
        return sqlite.insert(table).values(values).on_conflict_do_nothing()

    return _ByDialect(Prepared(build), Prepared(build_sqlite))


class _ByDialect:
    """Two prepared forms of one statement whose Core construct differs by dialect."""

    def __init__(self, postgres: Prepared, sqlite_form: Prepared) -> None:
        self.postgres = postgres
        self.sqlite = sqlite_form

    def many(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        (self.postgres if conn.dialect.name == "postgresql" else self.sqlite).many(conn, rows)


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
_INSERT_PARTS = _insert_ignoring_duplicates(message_parts, "message_id", "part_no", "connector", "smsc_message_id", "state")
_INSERT_KEYS = _insert_ignoring_duplicates(receipt_keys, "connector", "key", "message_id", "part_no", "parts")


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
    return _match_waiting(conn, {(k["connector"], k["key"]) for k in keys}, now)


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
            conn.execute(
                insert(ledger).values(
                    partner_id=row.partner_id,
                    amount=row.cost,
                    balance_after=balance,
                    kind="refund",
                    reference=f"message {item.message_id} not delivered: {item.error}"[:200],
                    message_count=1,
                    created_at=now,
                )
            )
    return changed


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


NO_RECEIPT = int(DeliveryState.NO_RECEIPT)


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


def apply_receipts(conn: Connection, receipts: Sequence[IncomingReceipt], now: int) -> ReceiptOutcome:
    """Matches receipts to message parts by key (per connector), records each part's state,
    and finishes every message whose parts are all final. Receipts that match nothing are
    kept in unmatched_receipts, with their keys, for the submit_sm_resp they overtook."""
    outcome = ReceiptOutcome()
    if not receipts:
        return outcome
    matches = _match(conn, [(r.connector, r.keys) for r in receipts])
    part_updates = []
    unmatched = []
    unmatched_keys = []
    for receipt, match in zip(receipts, matches):
        outcome.receipts[(receipt.connector, receipt.state, "unmatched" if match is None else "matched")] += 1
        if match is None:
            unmatched_keys.append((receipt.connector, receipt.keys))
            unmatched.append(
                {
                    "connector": receipt.connector,
                    "smsc_message_id": receipt.smsc_message_id[:80],
                    "keys": ",".join(receipt.keys)[:400],
                    "state": receipt.state,
                    "stat": receipt.stat[:16],
                    "error": (receipt.error or None) and receipt.error[:16],
                    "done_at": receipt.done_at,
                    "received_at": now,
                }
            )
            continue
        part_updates.append(_part_update(match, receipt, now))
    if unmatched:
        ids = conn.execute(insert(unmatched_receipts).returning(unmatched_receipts.c.id, sort_by_parameter_order=True), unmatched).scalars().all()
        key_rows = [
            {"key": key[:80], "connector": connector, "receipt_id": receipt_id, "received_at": now}
            for receipt_id, (connector, keys) in zip(ids, unmatched_keys)
            for key in dict.fromkeys(keys)
        ]
        _INSERT_WAITING_KEYS.many(conn, key_rows)
    outcome.unmatched = len(unmatched)
    outcome.matched = len(part_updates)
    outcome.finished = _record_part_states(conn, part_updates, now, outcome.submit_to_final_ms)
    return outcome


_INSERT_WAITING_KEYS = _insert_ignoring_duplicates(unmatched_receipt_keys, "key", "connector", "receipt_id", "received_at")
_ANY_WAITING = Prepared(lambda: select(unmatched_receipt_keys.c.receipt_id).limit(1))
_WAITING_KEYS_IN = PreparedIn(
    lambda names: select(
        unmatched_receipt_keys.c.connector, unmatched_receipt_keys.c.key, unmatched_receipt_keys.c.receipt_id, unmatched_receipt_keys.c.received_at
    ).where(unmatched_receipt_keys.c.key.in_(names))
)
_WAITING_RECEIPTS_IN = PreparedIn(
    lambda names: select(
        unmatched_receipts.c.id,
        unmatched_receipts.c.connector,
        unmatched_receipts.c.smsc_message_id,
        unmatched_receipts.c["keys"],  # not .c.keys: that is the collection's method
        unmatched_receipts.c.state,
        unmatched_receipts.c.stat,
        unmatched_receipts.c.error,
        unmatched_receipts.c.done_at,
    ).where(unmatched_receipts.c.id.in_(names), unmatched_receipts.c.matched_at.is_(None))
)


def _match_waiting(conn: Connection, recorded: set[tuple[str, str]], now: int) -> ReceiptOutcome:
    """Matches the unmatched receipts that share one of these just recorded (connector, key)
    pairs: a receipt can overtake the response to its own submit_sm. Found by key, so the
    cost does not depend on how many other receipts are waiting."""
    outcome = ReceiptOutcome()
    if not recorded or not _ANY_WAITING.all(conn):
        return outcome
    since = now - REMATCH_WINDOW_MS
    receipt_ids = sorted(
        {
            receipt_id
            for connector, key, receipt_id, received_at in _WAITING_KEYS_IN.rows(conn, sorted({key for _, key in recorded}))
            if (connector, key) in recorded and received_at >= since
        }
    )
    if not receipt_ids:
        return outcome
    waiting = _WAITING_RECEIPTS_IN.rows(conn, receipt_ids)
    # The receipt's own preference among its keys decides, as for a receipt that finds its
    # part at once (exact id before numeric readings).
    matches = _match(conn, [(connector, keys.split(",")) for _, connector, _, keys, *_ in waiting])
    part_updates = []
    matched_ids = []
    for (receipt_id, connector, smsc_message_id, _, state, stat, error, done_at), match in zip(waiting, matches):
        if match is None:
            continue
        receipt = IncomingReceipt(connector, smsc_message_id, [], state, stat or "", error, done_at)
        outcome.receipts[(connector, state, "rematched")] += 1
        part_updates.append(_part_update(match, receipt, now))
        matched_ids.append(receipt_id)
    if matched_ids:
        conn.execute(update(unmatched_receipts).where(unmatched_receipts.c.id.in_(matched_ids)).values(matched_at=now))
        conn.execute(delete(unmatched_receipt_keys).where(unmatched_receipt_keys.c.receipt_id.in_(matched_ids)))
    outcome.matched = len(part_updates)
    outcome.finished = _record_part_states(conn, part_updates, now, outcome.submit_to_final_ms)
    return outcome


def _part_update(match: tuple[int, int, int], receipt: IncomingReceipt, now: int) -> dict[str, Any]:
    message_id, part_no, parts = match
    return {
        "p_message": message_id,
        "p_part": part_no,
        "p_parts": parts,
        "p_state": receipt.state,
        "p_stat": receipt.stat[:16],
        "p_error": (receipt.error or None) and receipt.error[:16],
        # The gateway's own clock: an SMSC's done date has minute resolution and an unstated
        # time zone, and would put deliveries before their acceptance.
        "p_at": now,
    }


_KEYS_IN = PreparedIn(
    lambda names: select(receipt_keys.c.connector, receipt_keys.c.key, receipt_keys.c.message_id, receipt_keys.c.part_no, receipt_keys.c.parts).where(
        receipt_keys.c.key.in_(names)
    )
)


def _match(conn: Connection, wanted: list[tuple[str, list[str]]]) -> list[tuple[int, int, int] | None]:
    """For each (connector, keys): the part it names as (message id, part number, parts
    sent), preferring the earliest key of the list (exact id first, then numeric readings)
    and, among equals, the newest message."""
    all_keys = sorted({key for _, keys in wanted for key in keys})
    found: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    if all_keys:
        for connector, key, message_id, part_no, parts in _KEYS_IN.rows(conn, all_keys):
            found.setdefault((connector, key), []).append((message_id, part_no, parts))
    result: list[tuple[int, int, int] | None] = []
    for connector, keys in wanted:
        choice = None
        for key in keys:
            candidates = found.get((connector, key))
            if candidates:
                choice = max(candidates)
                break
        result.append(choice)
    return result


_SET_PART_STATE = Prepared(
    lambda: (
        update(message_parts)
        .where(message_parts.c.message_id == bindparam("p_message"), message_parts.c.part_no == bindparam("p_part"))
        .values(state=bindparam("p_state"), stat=bindparam("p_stat"), error=bindparam("p_error"), receipt_at=bindparam("p_at"))
    )
)
_PART_STATES_IN = PreparedIn(
    lambda names: select(message_parts.c.message_id, message_parts.c.state, message_parts.c.receipt_at).where(message_parts.c.message_id.in_(names))
)
# States are filtered here rather than in SQL: given "state = 1 OR state = 2", SQLite reads
# those states' whole range of the queue index instead of the ids asked for.
_STATES_IN = PreparedIn(lambda names: select(messages.c.id, messages.c.state, messages.c.submitted_at).where(messages.c.id.in_(names)))
_FINISH = Prepared(
    lambda: (
        update(messages)
        .where(messages.c.id == bindparam("f_id"), or_(messages.c.state == SCHEDULED, messages.c.state == SENT))
        .values(state=bindparam("f_state"), done_at=bindparam("f_done"), lease_owner=None, lease_until=None)
    )
)


def _record_part_states(conn: Connection, updates: list[dict[str, Any]], now: int, latencies: list[int]) -> list[int]:
    """Stores each part's receipt state and finishes the messages whose parts are all final
    (a message of one part, the usual case, needs no second look); appends to `latencies`
    the time from submit_sm to the final state of each."""
    if not updates:
        return []
    # A part's own state matters only for putting a message of several parts together; a
    # one-part message takes its receipt's state directly.
    _SET_PART_STATE.many(conn, [u for u in updates if u["p_parts"] != 1])
    finals: dict[int, tuple[int, int]] = {}
    several = set()
    for u in updates:
        if u["p_parts"] == 1:
            if u["p_state"] not in OPEN_STATES:
                finals[u["p_message"]] = (u["p_state"], u["p_at"])
        else:
            several.add(u["p_message"])
    if several:
        states: dict[int, list[tuple[int, int | None]]] = {}
        for message_id, state, receipt_at in _PART_STATES_IN.rows(conn, sorted(several)):
            states.setdefault(message_id, []).append((state, receipt_at))
        for message_id, parts in states.items():
            if any(state in OPEN_STATES for state, _ in parts):
                continue
            worst = max((state for state, _ in parts), key=lambda state: _SEVERITY.get(state, 1))
            finals[message_id] = (worst, max(at or now for _, at in parts))
    if finals:
        # A receipt the SMSC sends again must not finish (and report) a message twice.
        still_open = {message_id: submitted_at for message_id, state, submitted_at in _STATES_IN.rows(conn, sorted(finals)) if state in OPEN_STATES}
        finals = {i: v for i, v in finals.items() if i in still_open}
        latencies.extend(done - still_open[i] for i, (_, done) in finals.items() if still_open[i] is not None)
    if not finals:
        return []
    _FINISH.many(conn, [{"f_id": i, "f_state": state, "f_done": done} for i, (state, done) in finals.items()])
    return sorted(finals)


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
_OPEN_CALLBACK = (callbacks.c.delivered_at.is_(None), callbacks.c.given_up_at.is_(None))


def claim_callbacks(
    conn: Connection, now: int, limit: int, lease_ms: int, per_partner: int | None = None, room: dict[str, int] | None = None
) -> list[DueCallback]:
    """Leases up to `limit` due callbacks, oldest first, at most `per_partner` of one partner
    and at most `room[partner]` of a partner that has some in flight already (none of one with
    no room), so that one partner's backlog never fills the claim. Each carries the partner's
    current URL and secret: fixing a URL fixes the queue."""
    room = room or {}
    full = sorted(partner for partner, free in room.items() if free <= 0)
    conditions = [*_OPEN_CALLBACK, callbacks.c.next_attempt_at <= now, or_(callbacks.c.lease_until.is_(None), callbacks.c.lease_until < now)]
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


# SentToNetwork is the description of two states; the final one is counted apart.
_COUNT_LABELS = {NO_RECEIPT: "SentToNetwork, no receipt (final)"}


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


def delivery_counts(conn: Connection) -> dict[str, int]:
    """Queue figures for health and metrics."""
    by_state: dict[int, int] = dict(conn.execute(select(messages.c.state, func.count()).group_by(messages.c.state)).all())
    open_unmatched = conn.execute(select(func.count()).select_from(unmatched_receipts).where(unmatched_receipts.c.matched_at.is_(None))).scalar_one()
    pending_callbacks = conn.execute(select(func.count()).select_from(callbacks).where(*_OPEN_CALLBACK)).scalar_one()
    given_up_callbacks = conn.execute(select(func.count()).select_from(callbacks).where(callbacks.c.given_up_at.is_not(None))).scalar_one()
    counts = {_COUNT_LABELS.get(state, DeliveryState(state).description): n for state, n in by_state.items()}
    counts["unmatched receipts"] = open_unmatched
    counts["pending callbacks"] = pending_callbacks
    counts["given-up callbacks"] = given_up_callbacks
    return counts
