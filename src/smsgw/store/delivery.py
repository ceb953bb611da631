"""The store's side of delivery: the queue (claims with leases), submit outcomes, receipts,
refunds and the callback outbox. Transaction functions of a Connection, set-based so that
thousands of outcomes per second cost a handful of statements per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from zoneinfo import ZoneInfo

from sqlalchemy import Integer, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..domain.reports import callback_body
from ..domain.states import DeliveryState
from . import inbound
from .prepared import Prepared, PreparedIn
from .schema import callbacks, idempotency_keys, ledger, message_parts, messages, partners, receipt_keys, unmatched_receipts
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
# Unmatched receipts are retried against newly recorded SMSC ids for this long.
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


@dataclass(frozen=True)
class Failure:
    message_id: int
    state: int
    error: str
    attempted: bool = False  # the failure is the outcome of a submit attempt
    owner: str | None = None  # the dispatcher whose lease it must still hold (None: sweeps)


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
    still_waiting: int = 0  # recent unmatched receipts that a rematch could not place yet
    finished: list[int] = field(default_factory=list)  # message ids that reached a final state
    callbacks: int = 0  # delivery reports queued for partners' callback URLs


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


def _insert_ignoring_duplicates(table, *columns: str) -> Prepared:
    def build():
        values = {c: bindparam(c) for c in columns}
        return postgresql.insert(table).values(values).on_conflict_do_nothing()

    def build_sqlite():
        values = {c: bindparam(c) for c in columns}
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
    lambda: update(messages)
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
_INSERT_PARTS = _insert_ignoring_duplicates(message_parts, "message_id", "part_no", "connector", "smsc_message_id", "state")
_INSERT_KEYS = _insert_ignoring_duplicates(receipt_keys, "connector", "key", "message_id", "part_no", "parts")


def record_submitted(conn: Connection, items: Sequence[Submitted], now: int) -> None:
    """The carrier took these messages: SentToNetwork, with the SMSC id of every part and the
    keys a receipt may quote it by. A message submitted twice (a lease ran out mid-send)
    keeps its first ids, and the second copy's keys are added so its receipts match too."""
    if not items:
        return
    _MARK_SENT.many(conn, [{"m_id": s.message_id, "m_connector": s.connector, "m_now": now} for s in items])
    parts = []
    keys = []
    for s in items:
        count = len(s.smsc_ids)
        for number, (smsc_id, part_keys) in enumerate(zip(s.smsc_ids, s.keys), start=1):
            parts.append({"message_id": s.message_id, "part_no": number, "connector": s.connector, "smsc_message_id": smsc_id[:80], "state": SENT})
            for key in part_keys:
                keys.append({"connector": s.connector, "key": key[:80], "message_id": s.message_id, "part_no": number, "parts": count})
    _INSERT_PARTS.many(conn, parts)
    _INSERT_KEYS.many(conn, keys)


def reschedule(conn: Connection, items: Sequence[Retry]) -> None:
    """Temporary failures: try again at `due_at`; only the lease holder may move a message."""
    if items:
        conn.execute(
            update(messages)
            .where(messages.c.id == bindparam("m_id"), messages.c.state == SCHEDULED, messages.c.lease_owner == bindparam("m_owner"))
            .values(
                due_at=bindparam("m_due"),
                attempts=messages.c.attempts + 1,
                error=bindparam("m_error"),
                lease_owner=None,
                lease_until=None,
            ),
            [{"m_id": r.message_id, "m_owner": r.owner, "m_due": r.due_at, "m_error": r.error[:200]} for r in items],
        )


def fail_unsent(conn: Connection, items: Sequence[Failure], now: int, zone: ZoneInfo) -> list[int]:
    """Final failure of messages that never reached a carrier (rejected at submit, or expired
    in the gateway): final state, and the charge refunded through the ledger in the same
    transaction. A message already past SCHEDULED is left alone, so nothing is refunded twice.
    Returns the ids that changed."""
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
                error=item.error[:200],
                attempts=messages.c.attempts + (1 if item.attempted else 0),
                lease_owner=None,
                lease_until=None,
            )
            .returning(messages.c.partner_id, messages.c.cost)
        ).first()
        if row is None:
            continue
        changed.append(item.message_id)
        if row.cost:
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


def expire_overdue(conn: Connection, now: int, limit: int, zone: ZoneInfo) -> list[int]:
    """Messages no dispatcher could hand to a carrier before they expired: AbsentSubscriber
    and refunded. Leased messages are left to their lease holder."""
    ids = conn.execute(
        select(messages.c.id)
        .where(
            messages.c.state == SCHEDULED,
            messages.c.expires_at < now,
            or_(messages.c.lease_until.is_(None), messages.c.lease_until < now),
        )
        .limit(limit)
    ).scalars().all()
    failures = [Failure(i, int(DeliveryState.ABSENT_SUBSCRIBER), "validity period ran out before any carrier took it") for i in ids]
    return fail_unsent(conn, failures, now, zone)


def apply_receipts(conn: Connection, receipts: Sequence[IncomingReceipt], now: int, zone: ZoneInfo) -> ReceiptOutcome:
    """Matches receipts to message parts by key (per connector), records each part's state,
    and finishes every message whose parts are all final. Receipts that match nothing are
    kept in unmatched_receipts."""
    outcome = ReceiptOutcome()
    if not receipts:
        return outcome
    matches = _match(conn, [(r.connector, r.keys) for r in receipts])
    part_updates = []
    unmatched = []
    for receipt, match in zip(receipts, matches):
        if match is None:
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
        conn.execute(insert(unmatched_receipts), unmatched)
    outcome.unmatched = len(unmatched)
    outcome.matched = len(part_updates)
    outcome.finished = _record_part_states(conn, part_updates, now, zone)
    return outcome


def rematch_receipts(conn: Connection, now: int, zone: ZoneInfo, limit: int = 2000) -> ReceiptOutcome:
    """Tries recent unmatched receipts again (their submit_sm_resp may have been recorded
    since: a receipt can overtake the response to its own submit_sm)."""
    outcome = ReceiptOutcome()
    pending = conn.execute(
        select(unmatched_receipts)
        .where(unmatched_receipts.c.matched_at.is_(None), unmatched_receipts.c.received_at >= now - REMATCH_WINDOW_MS)
        .order_by(unmatched_receipts.c.id)
        .limit(limit)
    ).all()
    if not pending:
        return outcome
    matches = _match(conn, [(p.connector, p.keys.split(",")) for p in pending])
    part_updates = []
    matched_ids = []
    for row, match in zip(pending, matches):
        if match is None:
            continue
        receipt = IncomingReceipt(row.connector, row.smsc_message_id, [], row.state, row.stat or "", row.error, row.done_at)
        part_updates.append(_part_update(match, receipt, now))
        matched_ids.append(row.id)
    if matched_ids:
        conn.execute(update(unmatched_receipts).where(unmatched_receipts.c.id.in_(matched_ids)).values(matched_at=now))
    outcome.matched = len(part_updates)
    outcome.still_waiting = len(pending) - len(matched_ids)
    outcome.finished = _record_part_states(conn, part_updates, now, zone)
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
    lambda: update(message_parts)
    .where(message_parts.c.message_id == bindparam("p_message"), message_parts.c.part_no == bindparam("p_part"))
    .values(state=bindparam("p_state"), stat=bindparam("p_stat"), error=bindparam("p_error"), receipt_at=bindparam("p_at"))
)
_PART_STATES_IN = PreparedIn(
    lambda names: select(message_parts.c.message_id, message_parts.c.state, message_parts.c.receipt_at).where(message_parts.c.message_id.in_(names))
)
# States are filtered here rather than in SQL: given "state = 1 OR state = 2", SQLite reads
# those states' whole range of the queue index instead of the ids asked for.
_STATES_IN = PreparedIn(lambda names: select(messages.c.id, messages.c.state).where(messages.c.id.in_(names)))
_FINISH = Prepared(
    lambda: update(messages)
    .where(messages.c.id == bindparam("f_id"), or_(messages.c.state == SCHEDULED, messages.c.state == SENT))
    .values(state=bindparam("f_state"), done_at=bindparam("f_done"), lease_owner=None, lease_until=None)
)


def _record_part_states(conn: Connection, updates: list[dict[str, Any]], now: int, zone: ZoneInfo) -> list[int]:
    """Stores each part's receipt state and finishes the messages whose parts are all final
    (a message of one part, the usual case, needs no second look)."""
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
        still_open = {message_id for message_id, state in _STATES_IN.rows(conn, sorted(finals)) if state in OPEN_STATES}
        finals = {i: v for i, v in finals.items() if i in still_open}
    if not finals:
        return []
    _FINISH.many(conn, [{"f_id": i, "f_state": state, "f_done": done} for i, (state, done) in finals.items()])
    return sorted(finals)


_ANY_CALLBACK_URL = Prepared(lambda: select(partners.c.id).where(partners.c.callback_url.is_not(None)).limit(1))
_REPORTS_IN = PreparedIn(
    lambda names: select(
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
    .where(messages.c.id.in_(names), partners.c.callback_url.is_not(None))
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
    rematch: bool,
    now: int,
    zone: ZoneInfo,
) -> ReceiptOutcome:
    """Everything the dispatcher learnt since its last write, in one transaction: submits
    first, so that receipts in the same batch find their ids; then the reports of every
    message that became final go to the callback outbox."""
    record_submitted(conn, submitted, now)
    reschedule(conn, retries)
    finished = fail_unsent(conn, failures, now, zone)
    outcome = apply_receipts(conn, receipts, now, zone)
    outcome.finished = finished + outcome.finished
    if rematch:
        again = rematch_receipts(conn, now, zone)
        outcome.matched += again.matched
        outcome.still_waiting = again.still_waiting
        outcome.finished += again.finished
    outcome.callbacks = queue_callbacks(conn, outcome.finished, now, zone)
    if any(f.state == BLACKLISTED for f in failures) or any(r.state == BLACKLISTED for r in receipts):
        inbound.list_blacklisted(conn, outcome.finished, now)
    return outcome


DELIVERED_CALLBACK_RETENTION_MS = 7 * 86_400_000
UNMATCHED_RECEIPT_RETENTION_MS = 30 * 86_400_000


def purge(conn: Connection, now: int) -> None:
    """Drops what nothing needs any more: idempotency answers past their 24 hours, callbacks
    delivered a week ago, unmatched receipts a month old."""
    conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL_MS))
    conn.execute(delete(callbacks).where(callbacks.c.delivered_at < now - DELIVERED_CALLBACK_RETENTION_MS))
    conn.execute(delete(unmatched_receipts).where(unmatched_receipts.c.received_at < now - UNMATCHED_RECEIPT_RETENTION_MS))


def sweep(conn: Connection, now: int, zone: ZoneInfo, rematch: bool, expire: bool, limit: int = 1000) -> ReceiptOutcome:
    """Housekeeping: retry unmatched receipts; expire what no carrier took in time (refunded;
    a scan of the whole queue, so the dispatcher asks for it rarely) and purge old rows."""
    outcome = rematch_receipts(conn, now, zone) if rematch else ReceiptOutcome()
    expired = expire_overdue(conn, now, limit, zone) if expire else []
    if expire:
        purge(conn, now)
    outcome.finished = expired + outcome.finished
    outcome.callbacks = queue_callbacks(conn, outcome.finished, now, zone)
    return outcome


@dataclass(frozen=True)
class DueCallback:
    id: int
    partner_id: str
    url: str
    body: bytes
    attempts: int
    created_at: int
    secret: str | None


def claim_callbacks(conn: Connection, now: int, limit: int, lease_ms: int) -> list[DueCallback]:
    due = (
        select(callbacks.c.id)
        .where(
            callbacks.c.delivered_at.is_(None),
            callbacks.c.next_attempt_at <= now,
            or_(callbacks.c.lease_until.is_(None), callbacks.c.lease_until < now),
        )
        .order_by(callbacks.c.next_attempt_at, callbacks.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(
        update(callbacks)
        .where(callbacks.c.id.in_(due.scalar_subquery()))
        .values(lease_until=now + lease_ms)
        .returning(callbacks.c.id, callbacks.c.partner_id, callbacks.c.url, callbacks.c.body, callbacks.c.attempts, callbacks.c.created_at)
    ).all()
    secrets = {}
    partner_ids = sorted({r.partner_id for r in rows})
    if partner_ids:
        secrets = dict(conn.execute(select(partners.c.id, partners.c.callback_secret).where(partners.c.id.in_(partner_ids))).all())
    return [DueCallback(r.id, r.partner_id, r.url, bytes(r.body), r.attempts, r.created_at, secrets.get(r.partner_id)) for r in rows]


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


def delivery_counts(conn: Connection) -> dict[str, int]:
    """Queue figures for health and metrics."""
    by_state = dict(conn.execute(select(messages.c.state, func.count()).group_by(messages.c.state)).all())
    open_unmatched = conn.execute(select(func.count()).select_from(unmatched_receipts).where(unmatched_receipts.c.matched_at.is_(None))).scalar_one()
    pending_callbacks = conn.execute(select(func.count()).select_from(callbacks).where(callbacks.c.delivered_at.is_(None))).scalar_one()
    counts = {DeliveryState(state).description: n for state, n in by_state.items()}
    counts["unmatched receipts"] = open_unmatched
    counts["pending callbacks"] = pending_callbacks
    return counts
