"""Accepted messages reach a real SMPP peer on loopback, and their reports come back."""

from __future__ import annotations

import asyncio
import time

from smsgw.dispatch.dispatcher import DispatchSettings
from smsgw.domain.states import DeliveryState

from ..helpers import entry, wait_for
from .conftest import Rig, number

DELIVERED = int(DeliveryState.DELIVERED)
FINAL = {int(s) for s in DeliveryState if s.is_final}


async def all_final(rig: Rig, count: int) -> bool:
    states = await rig.states()
    return len(states) == count and all(s in FINAL for s in states.values())


async def test_messages_are_delivered_and_reported(rig: Rig):
    texts = [f"Hello {i}" for i in range(150)] + ["Long " * 70 + str(i) for i in range(20)] + [f"Привет {i}" for i in range(30)]
    entries = [entry(number(i), text) for i, text in enumerate(texts)]
    async with rig.delivering(window=32):
        answers = await rig.send(entries)
        assert all(a["response-code"] == 200 for a in answers)
        await wait_for(lambda: all_final(rig, len(texts)))
    states = await rig.states()
    assert set(states.values()) == {DELIVERED}
    # Every part reached the SMSC once, in the right encoding, and reassembles to the text.
    parts_expected = sum(3 if t.startswith("Long") else 1 for t in texts)
    assert rig.simulator.submits == parts_expected
    by_destination: dict[str, list] = {}
    for record in rig.simulator.received:
        by_destination.setdefault(record.destination, []).append(record)
    for answer, text in zip(answers, texts):
        records = sorted(by_destination[answer["mobile"]], key=lambda r: r.concatenation.number if r.concatenation else 1)
        assert "".join(r.text for r in records) == text
        assert {r.data_coding for r in records} == ({8} if text.startswith("Привет") else {0})
        assert {r.source for r in records} == {"SC1"}
        assert {r.registered_delivery & 1 for r in records} == {1}
    report = await rig.dlr(answers[0]["messageid"])
    assert report["delivery-status"] == DELIVERED and report["delivery-description"] == "DeliveredToTerminal"
    assert rig.operator.balance("p1") == 1_000_000_00 - 100 * (150 + 30) - 300 * 20


async def test_failures_take_the_contract_states_and_unsent_messages_are_refunded(rig: Rig):
    # Simulator test numbers: ...0001 undeliverable, ...0002 rejected at submit, ...0004 expired.
    entries = [entry("0712340001"), entry("0712340002"), entry("0712340004"), entry("0712345678")]
    async with rig.delivering():
        answers = await rig.send(entries)
        await wait_for(lambda: all_final(rig, 4))
    ids = [int(a["messageid"]) for a in answers]
    states = await rig.states()
    assert [states[i] for i in ids] == [
        int(DeliveryState.DELIVERY_IMPOSSIBLE),
        int(DeliveryState.DELIVERY_IMPOSSIBLE),
        int(DeliveryState.ABSENT_SUBSCRIBER),
        DELIVERED,
    ]
    refunds = [e for e in rig.operator.ledger("p1") if e["kind"] == "refund"]
    # Only the message the carrier refused never left the gateway: only it is refunded.
    assert [(e["amount"], str(ids[1]) in e["reference"]) for e in refunds] == [(100, True)]
    assert rig.operator.balance("p1") == 1_000_000_00 - 400 + 100


async def test_validity_runs_out_for_a_carrier_that_never_takes_it(rig_factory):
    rig = await rig_factory(env={"SMSGW_VALIDITY_SECONDS": "3", "SMSGW_RETRY_BASE_SECONDS": "0"})
    async with rig.delivering():
        (answer,) = await rig.send([entry("0712340006")])  # queue full, always
        await wait_for(lambda: all_final(rig, 1), timeout=20)
    message_id = int(answer["messageid"])
    assert (await rig.states())[message_id] == int(DeliveryState.ABSENT_SUBSCRIBER)
    attempts, error = rig.operator.sql(f"SELECT attempts, error FROM messages WHERE id = {message_id}")[0]
    assert attempts >= 1 and rig.simulator.submits >= 2 and "ESME_RMSGQFUL" in error
    assert rig.operator.balance("p1") == 1_000_000_00  # refunded
    report = await rig.dlr(answer["messageid"])
    assert report["delivery-description"] == "AbsentSubscriber"


async def test_time_to_send_is_respected(rig: Rig):
    async with rig.delivering() as dispatcher:
        await wait_for(lambda: all(lane.usable(0) for lane in dispatcher.lanes))
        # Far enough, counted from a bound carrier, that the message without a time goes out before it.
        due = int(time.time()) + 5
        (_later,) = await rig.send([entry(number(1), timeToSend=due)])
        (_now,) = await rig.send([entry(number(2))])
        await wait_for(lambda: all_final(rig, 2), timeout=20)
    sent = {r.destination: r.received_at for r in rig.simulator.received}
    assert sent["254" + number(1)[1:]] >= due
    assert sent["254" + number(2)[1:]] < due


async def test_otp_goes_ahead_of_queued_bulk(rig: Rig):
    bulk = [entry(number(i), f"bulk {i}") for i in range(120)]
    await rig.send(bulk)
    for i in range(3):
        await rig.send(
            [], path="/api/services/sendotp", partnerID="p1", apikey=bulk[0]["apikey"], shortcode="SC1", message=f"otp {i}", mobile=number(7, "0733")
        )
    async with rig.delivering(window=2, tps=100):
        await wait_for(lambda: all_final(rig, 123), timeout=30)
    order = [r.text for r in rig.simulator.received]
    otp_positions = [order.index(f"otp {i}") for i in range(3)]
    # Claimed before any bulk message beyond the first lane's worth.
    assert max(otp_positions) < 5, otp_positions


async def test_receipts_match_across_hex_and_decimal_ids_and_before_the_response(rig_factory):
    rig = await rig_factory(id_format="hex", receipt_id_format="other")
    async with rig.delivering():
        answers = await rig.send([entry(number(i)) for i in range(100)] + [entry("0712340009")])  # 0009: receipt first
        await wait_for(lambda: all_final(rig, 101))
    assert set((await rig.states()).values()) == {DELIVERED}
    assert rig.dispatcher.stats["receipts unmatched"] <= 1  # the early receipt may wait a moment
    assert rig.operator.sql("SELECT count(*) FROM unmatched_receipts WHERE matched_at IS NULL") == [(0,)]
    assert len(answers) == 101


async def test_throttling_and_queue_full_lose_nothing(rig_factory):
    rig = await rig_factory(behaviour="throttle", throttle_tps=150)
    async with rig.delivering(window=8):
        await rig.send([entry(number(i)) for i in range(200)])
        await wait_for(lambda: all_final(rig, 200), timeout=60)
    assert set((await rig.states()).values()) == {DELIVERED}
    assert rig.simulator.responses_by_status[0x58] > 0  # ESME_RTHROTTLED was really answered
    assert len({r.destination for r in rig.simulator.received if r.status == 0}) == 200


async def test_dropped_connection_with_a_full_window_delivers_everything(rig_factory):
    rig = await rig_factory(behaviour="drop", drop_after=50, drop_hold=8, max_drops=3)
    window = 8
    async with rig.delivering(DispatchSettings(retry_base_seconds=0.1), window=window):
        await rig.send([entry(number(i), f"drop test {i}") for i in range(300)])
        await wait_for(lambda: all_final(rig, 300), timeout=60)
    assert set((await rig.states()).values()) == {DELIVERED}
    assert rig.simulator.drops >= 1
    duplicates = sum(n - 1 for n in rig.simulator.texts.values() if n > 1)
    assert duplicates <= window * rig.simulator.drops
    assert rig.simulator.max_outstanding <= window


async def test_lease_of_a_vanished_dispatcher_runs_out_and_another_sends(rig: Rig):
    """A dispatcher claims messages and dies before sending them: after the lease another
    dispatcher takes them over."""
    from smsgw.store import queue

    answers = await rig.send([entry(number(i)) for i in range(20)])
    lease_ms = 1500
    claimed_at_ms = int(time.time() * 1000)
    claimed = await rig.store.write(queue.claim_due, "dead-dispatcher", claimed_at_ms, 100, lease_ms, None)
    assert len(claimed) == 20
    async with rig.delivering():
        await wait_for(lambda: all_final(rig, 20), timeout=20)
    assert rig.simulator.submits == 20 and len(answers) == 20
    # Nothing was sent while the dead dispatcher's lease held, however slow the start was.
    first_submit = min(r.received_at for r in rig.simulator.received)
    assert first_submit * 1000 >= claimed_at_ms + lease_ms, first_submit * 1000 - claimed_at_ms


async def test_a_message_no_dispatcher_carries_expires_and_is_refunded(rig_factory):
    """Accepted while its network had a route; the dispatchers now carry Airtel only."""
    rig = await rig_factory(env={"SMSGW_VALIDITY_SECONDS": "2"})
    (answer,) = await rig.send([entry(number(3))])  # Safaricom
    async with rig.delivering(DispatchSettings(sweep_interval=0.2, expire_interval=0.5), networks="2"):
        await wait_for(lambda: all_final(rig, 1), timeout=20)
    assert (await rig.states())[int(answer["messageid"])] == int(DeliveryState.ABSENT_SUBSCRIBER)
    assert rig.simulator.submits == 0
    assert rig.operator.balance("p1") == 1_000_000_00


async def test_each_network_goes_to_its_own_smsc_and_unrouted_ones_get_1002(rig_factory):
    import httpx

    from smsgw.connectors.smpp.simulator import SmscSimulator
    from smsgw.dispatch.runtime import DeliveryPlan, run_delivery

    from ..helpers import LiveServer
    from .conftest import PASSWORD, SYSTEM_ID

    rig = await rig_factory()
    airtel_smsc = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD)
    airtel_port = await airtel_smsc.start("127.0.0.1", 0)
    plan = DeliveryPlan.from_urls(
        [rig.smsc_url(networks="1", name="safaricom"), f"smpp://{SYSTEM_ID}:{PASSWORD}@127.0.0.1:{airtel_port}?networks=2&name=airtel"],
        rig.settings,
    )
    # The API of this deployment knows the routes too: Telkom (3) has none.
    with LiveServer(rig.settings, routed_networks=plan.routed_networks(rig.settings)) as api:
        try:
            async with run_delivery(rig.store, rig.settings, plan):
                async with httpx.AsyncClient(timeout=30) as client:
                    body = {"smslist": [entry(number(1)), entry(number(2, "0733")), entry(number(3, "0770"))]}
                    answers = (await client.post(api.url + "/api/services/sendbulk", json=body)).json()["responses"]
                assert [a["response-code"] for a in answers] == [200, 200, 1002]
                await wait_for(lambda: all_final(rig, 2))
        finally:
            await airtel_smsc.stop()
    assert [r.destination for r in rig.simulator.received] == [answers[0]["mobile"]]
    assert [r.destination for r in airtel_smsc.received] == [answers[1]["mobile"]]


async def test_a_slow_carrier_and_short_leases_send_nothing_twice(rig_factory):
    """Each submit_sm takes a second to be answered and the lease is two seconds: the
    dispatcher keeps its leases alive, so no message is claimed again while it waits."""
    rig = await rig_factory(behaviour="slow", response_delay=1.0)
    await rig.send([entry(number(i), f"slow {i}") for i in range(6)])
    async with rig.delivering(DispatchSettings(lease_seconds=2.0, poll_interval=0.1), window=1):
        await wait_for(lambda: all_final(rig, 6), timeout=60)
    assert set(rig.simulator.texts.values()) == {1}
    assert len(rig.simulator.texts) == 6


async def test_an_outcome_the_store_refuses_is_given_up_alone(rig: Rig):
    """A receipt the database will not store (here a trigger; in the field, a byte it cannot
    hold) must not hold up the rest: it alone is refused, and the SMSC is told to resend it."""
    from smsgw.connectors.smpp.receipt import Receipt
    from smsgw.dispatch.dispatcher import PoisonOutcome

    from ..faults import refuse_inserts

    refuse_inserts(rig.operator, "unmatched_receipts", "smsc_message_id", "poison")
    poison = Receipt("poison", DeliveryState.DELIVERED, "DELIVRD", None, None, "254700000000", "SC1", "id:poison stat:DELIVRD")
    async with rig.delivering() as dispatcher:
        await rig.send([entry(number(i)) for i in range(30)])
        stored = asyncio.create_task(dispatcher.receipt_sink("carrier")(poison))
        await wait_for(lambda: all_final(rig, 30))
        try:
            await asyncio.wait_for(stored, 10)
            raise AssertionError("the refused receipt was reported as stored")
        except PoisonOutcome:
            pass
    assert dispatcher.stats["outcomes refused by the store"] == 1
    assert set((await rig.states()).values()) == {DELIVERED}
