"""Delivery receipts: matched to message parts by key (per connector), each part's state
recorded, and a message finished once all its parts are final. A receipt that matches nothing
waits, with its keys, for the submit_sm_resp it overtook.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..domain.states import DeliveryState
from .delivery_common import OPEN_STATES, SCHEDULED, SENT, insert_ignoring_duplicates
from .prepared import Prepared, PreparedIn
from .schema import (
    message_parts,
    messages,
    receipt_keys,
    unmatched_receipt_keys,
    unmatched_receipts,
)

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


_INSERT_WAITING_KEYS = insert_ignoring_duplicates(unmatched_receipt_keys, "key", "connector", "receipt_id", "received_at")
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


def match_waiting(conn: Connection, recorded: set[tuple[str, str]], now: int) -> ReceiptOutcome:
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
