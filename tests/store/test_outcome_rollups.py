"""Delivery outcomes in outcome_rollups, on both stores: each way a message moves (a carrier
takes it, a receipt, a refusal, expiry, no receipt, a cancel) counts it once under its SMSC
and state, in the transaction that moves it: a batch recorded again moves nothing and counts
nothing, and a transaction that fails counts nothing either."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from smsgw.domain.states import DeliveryState
from smsgw.store import accounts, outcomes, queue, retention, rollups
from smsgw.store.outcomes import Failure, Submitted
from smsgw.store.receipts import IncomingReceipt
from smsgw.store.schema import messages, outcome_rollups
from smsgw.store.store import NewMessage, Store, now_ms
from smsgw.store.urls import StoreUrl

HOUR_MS = rollups.HOUR_MS
ZONE = ZoneInfo("UTC")
SMSC = "smsc-a"
DELIVERED = int(DeliveryState.DELIVERED)
IMPOSSIBLE = int(DeliveryState.DELIVERY_IMPOSSIBLE)
ABSENT = int(DeliveryState.ABSENT_SUBSCRIBER)
NO_RECEIPT = int(DeliveryState.NO_RECEIPT)
CANCELLED = int(DeliveryState.CANCELLED)
SENT = int(DeliveryState.SENT_TO_NETWORK)
NETWORK = 2
Action = Callable[..., object]


def submit(conn, message_id: int, parts: int, now: int) -> None:
    queue.claim_due(conn, "me", now, 10, 60_000, None)
    resubmit(conn, message_id, parts, now)


def resubmit(conn, message_id: int, parts: int, now: int) -> None:
    """The submit_sm_resp of a message recorded again (the same batch, or a second dispatcher
    that sent it after a lease ran out)."""
    item = Submitted(message_id, SMSC, [f"A{message_id}-{n}" for n in range(parts)], [[f"a{message_id}-{n}"] for n in range(parts)])
    outcomes.record_outcomes(conn, [item], [], [], [], now, ZONE)


def receipt(state: int, *part_numbers: int) -> Action:
    def record(conn, message_id: int, parts: int, now: int) -> None:
        numbers = part_numbers or range(parts)
        found = [IncomingReceipt(SMSC, f"A{message_id}-{n}", [f"a{message_id}-{n}"], state, "STAT", None, None) for n in numbers]
        outcomes.record_outcomes(conn, [], [], [], found, now, ZONE)

    return record


def submit_with_receipt(conn, message_id: int, parts: int, now: int) -> None:
    """The submit_sm_resp and the receipt in one batch."""
    queue.claim_due(conn, "me", now, 10, 60_000, None)
    item = Submitted(message_id, SMSC, [f"A{message_id}-0"], [[f"a{message_id}-0"]])
    found = IncomingReceipt(SMSC, f"A{message_id}-0", [f"a{message_id}-0"], DELIVERED, "DELIVRD", None, None)
    outcomes.record_outcomes(conn, [item], [], [], [found], now, ZONE)


def refuse(conn, message_id: int, parts: int, now: int) -> None:
    queue.claim_due(conn, "me", now, 10, 60_000, None)
    failure = Failure(message_id, IMPOSSIBLE, "ESME_RINVDSTADR", attempted=True, owner="me")
    outcomes.record_outcomes(conn, [], [], [failure], [], now, ZONE)


def sweep_later(conn, message_id: int, parts: int, now: int) -> None:
    """The sweep, past the validity period and the receipt grace."""
    retention.sweep(conn, now + 3 * HOUR_MS, ZONE, HOUR_MS)


def cancel(conn, message_id: int, parts: int, now: int) -> None:
    accounts.cancel_scheduled(conn, "acme", message_id)


CASES = [
    ("taken by a carrier", 1, [submit], {(SMSC, SENT): (1, 1)}),
    ("taken, recorded again", 1, [submit, resubmit], {(SMSC, SENT): (1, 1)}),
    ("delivered", 1, [submit, receipt(DELIVERED)], {(SMSC, SENT): (1, 1), (SMSC, DELIVERED): (1, 1)}),
    ("receipt sent twice", 1, [submit, receipt(DELIVERED), receipt(DELIVERED)], {(SMSC, SENT): (1, 1), (SMSC, DELIVERED): (1, 1)}),
    ("submit and receipt in one batch", 1, [submit_with_receipt], {(SMSC, SENT): (1, 1), (SMSC, DELIVERED): (1, 1)}),
    ("two parts, both delivered", 2, [submit, receipt(DELIVERED, 0), receipt(DELIVERED, 1)], {(SMSC, SENT): (1, 2), (SMSC, DELIVERED): (1, 2)}),
    ("two parts, one receipt", 2, [submit, receipt(DELIVERED, 0)], {(SMSC, SENT): (1, 2)}),
    ("undeliverable", 1, [submit, receipt(IMPOSSIBLE)], {(SMSC, SENT): (1, 1), (SMSC, IMPOSSIBLE): (1, 1)}),
    ("refused at submit", 1, [refuse], {("", IMPOSSIBLE): (1, 1)}),
    ("expired in the gateway", 1, [sweep_later, sweep_later], {("", ABSENT): (1, 1)}),
    ("no receipt by the end", 1, [submit, sweep_later, sweep_later], {(SMSC, SENT): (1, 1), (SMSC, NO_RECEIPT): (1, 1)}),
    ("cancelled", 1, [cancel, cancel], {("", CANCELLED): (1, 1)}),
    ("cancel after the carrier took it", 1, [submit, cancel], {(SMSC, SENT): (1, 1)}),
]


async def _open(database_url: str) -> Store:
    store = Store.open(StoreUrl.parse(database_url))
    await store.migrate()
    await store.create_partner("acme", "acme", "not a key", 10**9)
    return store


async def _accept(store: Store, parts: int, created_at: int) -> int:
    (message_id,) = await store.next_message_ids(1)
    row = NewMessage(
        message_id,
        "acme",
        "SC",
        "254712345678",
        NETWORK,
        "hello",
        0,
        parts,
        100,
        None,
        1,
        1,
        created_at,
        created_at,
        message_id,
        created_at + HOUR_MS,
    )
    await store.accept("acme", 100, [row], message_id, "test")
    return message_id


def _counts(conn) -> dict[tuple[str, int], tuple[int, int]]:
    rows = conn.execute(
        select(outcome_rollups.c.smsc, outcome_rollups.c.state, func.sum(outcome_rollups.c.messages), func.sum(outcome_rollups.c.parts))
        .where(outcome_rollups.c.partner_id == "acme", outcome_rollups.c.network_id == NETWORK)
        .group_by(outcome_rollups.c.smsc, outcome_rollups.c.state)
    ).all()
    return {(smsc, int(state)): (int(m), int(p)) for smsc, state, m, p in rows}


@pytest.mark.parametrize(("parts", "actions", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_move_is_counted_once(database_url, parts, actions, expected):
    async def run() -> dict:
        store = await _open(database_url)
        try:
            now = now_ms()
            message_id = await _accept(store, parts, now - 1000)
            for action in actions:
                await store.write(action, message_id, parts, now)
            return await store.read(_counts)
        finally:
            await store.close()

    assert asyncio.run(run()) == expected


def test_a_move_is_counted_in_the_hour_it_happens(database_url):
    async def run() -> list:
        store = await _open(database_url)
        try:
            now = now_ms()
            message_id = await _accept(store, 1, now - 3 * HOUR_MS)  # accepted hours before it moves
            await store.write(submit, message_id, 1, now)
            await store.write(receipt(DELIVERED), message_id, 1, now + HOUR_MS)
            return await store.read(
                lambda conn: conn.execute(select(outcome_rollups.c.hour, outcome_rollups.c.state).order_by(outcome_rollups.c.hour)).all()
            )
        finally:
            await store.close()

    now = now_ms()
    hour = now // HOUR_MS * HOUR_MS
    rows = [tuple(r) for r in asyncio.run(run())]
    assert rows in ([(hour, SENT), (hour + HOUR_MS, DELIVERED)], [(hour + HOUR_MS, SENT), (hour + 2 * HOUR_MS, DELIVERED)])


class Crash(Exception):
    pass


def test_a_failed_transaction_counts_nothing_and_its_retry_counts_once(database_url):
    """The count is part of the transaction that moves the message: a dispatcher that dies (or
    whose write fails) after recording a batch leaves neither the move nor the count, and
    recording the batch again moves and counts it once."""

    def submit_then_crash(conn, message_id: int, now: int) -> None:
        submit(conn, message_id, 1, now)
        receipt(DELIVERED)(conn, message_id, 1, now)
        raise Crash

    async def run() -> tuple:
        store = await _open(database_url)
        try:
            now = now_ms()
            message_id = await _accept(store, 1, now - 1000)
            with pytest.raises(Crash):
                await store.write(submit_then_crash, message_id, now)
            after_crash = await store.read(_counts)
            state = await store.read(lambda conn: conn.execute(select(messages.c.state).where(messages.c.id == message_id)).scalar_one())
            await store.write(submit, message_id, 1, now)
            await store.write(receipt(DELIVERED), message_id, 1, now)
            await store.write(receipt(DELIVERED), message_id, 1, now)
            return after_crash, state, await store.read(_counts)
        finally:
            await store.close()

    after_crash, state, counts = asyncio.run(run())
    assert after_crash == {} and state == int(DeliveryState.SCHEDULED)
    assert counts == {(SMSC, SENT): (1, 1), (SMSC, DELIVERED): (1, 1)}


def test_a_batch_counts_per_partner_network_and_smsc(database_url):
    """One batch of many messages of two partners, three networks and two SMSCs: the sums come
    out per key, as counted from the messages themselves."""
    now = now_ms()

    async def run() -> tuple[list[NewMessage], list]:
        store = Store.open(StoreUrl.parse(database_url))
        await store.migrate()
        try:
            for partner_id in ("acme", "rival"):
                await store.create_partner(partner_id, partner_id, "not a key", 10**9)
            ids = await store.next_message_ids(60)
            rows = [
                NewMessage(
                    i,
                    ("acme", "rival")[n % 2],
                    "SC",
                    "254712345678",
                    1 + n % 3,
                    "hi",
                    0,
                    1 + n % 4 // 2,
                    100,
                    None,
                    1,
                    1,
                    now - 1000,
                    now - 1000,
                    ids[0],
                    now + HOUR_MS,
                )
                for n, i in enumerate(ids)
            ]
            for partner_id in ("acme", "rival"):
                mine = [r for r in rows if r.partner_id == partner_id]
                await store.accept(partner_id, 100 * len(mine), mine, mine[0].id, "test")

            def move(conn) -> None:
                queue.claim_due(conn, "me", now, 100, 60_000, None)
                taken = [
                    Submitted(r.id, _smsc(r), [f"X{r.id}-{n}" for n in range(r.parts)], [[f"x{r.id}-{n}"] for n in range(r.parts)]) for r in rows[:50]
                ]
                refused = [Failure(r.id, IMPOSSIBLE, "refused", attempted=True, owner="me") for r in rows[50:]]
                done = [
                    IncomingReceipt(_smsc(r), f"X{r.id}-{n}", [f"x{r.id}-{n}"], DELIVERED, "DELIVRD", None, None)
                    for r in rows[:30]
                    for n in range(r.parts)
                ]
                outcomes.record_outcomes(conn, taken, [], refused, done, now, ZONE)

            await store.write(move)
            found = await store.read(
                lambda conn: conn.execute(
                    select(
                        outcome_rollups.c.partner_id,
                        outcome_rollups.c.network_id,
                        outcome_rollups.c.smsc,
                        outcome_rollups.c.state,
                        outcome_rollups.c.messages,
                        outcome_rollups.c.parts,
                    )
                ).all()
            )
            return rows, found
        finally:
            await store.close()

    rows, found = asyncio.run(run())
    expected: dict[tuple, list[int]] = {}

    def add(row: NewMessage, smsc: str, state: int) -> None:
        total = expected.setdefault((row.partner_id, row.network_id, smsc, state), [0, 0])
        total[0] += 1
        total[1] += row.parts

    for n, row in enumerate(rows):
        if n < 50:
            add(row, _smsc(row), SENT)
        if n < 30:
            add(row, _smsc(row), DELIVERED)
        if n >= 50:
            add(row, "", IMPOSSIBLE)
    assert {(p, n, c, s): [m, parts] for p, n, c, s, m, parts in found} == expected
    assert len(expected) > 12  # the batch spreads over many keys


def _smsc(row: NewMessage) -> str:
    return ("smsc-a", "smsc-b")[row.id % 2]
