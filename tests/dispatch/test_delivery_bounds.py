"""Every message reaches a final state against a hostile SMSC on loopback: one that never
answers a submit_sm, one whose receipts overtake their responses while thousands of others
wait unmatched, one that never sends a receipt."""

from __future__ import annotations

import asyncio
import time

import orjson

from smsgw.connectors.smpp.pdu import ESME_ROK
from smsgw.connectors.smpp.simulator import Behaviour, Happy, SubmitContext
from smsgw.dispatch.dispatcher import DispatchSettings
from smsgw.domain.states import DeliveryState
from smsgw.store import outcomes, receipts
from smsgw.store.receipts import IncomingReceipt

from ..helpers import entry, wait_for
from .conftest import Rig, number
from .test_callbacks_and_receipts import CallbackReceiver

CREDITS = 1_000_000_00
PRICE = 100  # one part at the default unit price, in hundredths


class SilentFor(Behaviour):
    """Never answers a submit_sm to `destination`; everything else takes the happy path."""

    name = "silent-for"

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self._happy = Happy()

    def handle(self, context: SubmitContext) -> None:
        if context.record.destination != self.destination:
            self._happy.handle(context)


class ReceiptLongBeforeResponse(Behaviour):
    """Sends the DELIVRD receipt at once and the submit_sm_resp `delay` seconds later, so the
    gateway has stored the receipt as unmatched before it learns the id."""

    name = "receipt-long-before-response"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def handle(self, context: SubmitContext) -> None:
        message_id = context.sim.new_message_id()
        context.record.message_id = message_id
        context.sim.schedule_receipt(context.session, context.pdu, context.record, "DELIVRD", "000", 0.0)
        context.session.call_later(self.delay, context.session.answer_submit, context.pdu, context.record, ESME_ROK, message_id)


class NeverReceipts(Behaviour):
    """Accepts every submit_sm and never sends its receipt."""

    name = "never-receipts"

    def handle(self, context: SubmitContext) -> None:
        context.accept()


async def test_an_unanswered_submit_is_resent_a_bounded_number_of_times_then_ends_unknown_unrefunded(rig_factory):
    silent = "254" + number(1)[1:]
    rig: Rig = await rig_factory(
        env={"SMSGW_RETRY_BASE_SECONDS": "0", "SMSGW_MAX_UNANSWERED_RESENDS": "1", "SMSGW_CALLBACK_RETRY_BASE_SECONDS": "1"},
        behaviour=SilentFor(silent),
    )
    receiver = CallbackReceiver(failures=0)
    await rig.store.set_callback("p1", receiver.url, "secret")
    try:
        async with rig.delivering(response_timeout=0.3):
            silent_answer, ordinary_answer = await rig.send([entry(number(1), clientsmsid="silent"), entry(number(2))])
            silent_id = int(silent_answer["messageid"])
            await wait_for(lambda: len(receiver.received) == 2, timeout=30)
            # Given time to go wrong: no further submit_sm once it is final.
            await asyncio.sleep(1.0)
            submits = rig.simulator.submits_by_destination[silent]
    finally:
        receiver.close()
    assert submits == 1 + 1
    states = await rig.states()
    assert states[silent_id] == int(DeliveryState.UNKNOWN)
    assert states[int(ordinary_answer["messageid"])] == int(DeliveryState.DELIVERED)
    report = await rig.dlr(str(silent_id))
    assert (report["delivery-status"], report["delivery-description"]) == (7, "Unknown")
    bodies = {orjson.loads(body)["messageid"]: orjson.loads(body) for body, _, _ in receiver.received}
    assert bodies[str(silent_id)]["description"] == "Unknown" and bodies[str(silent_id)]["clientsmsid"] == "silent"
    unanswered, error = rig.operator.sql(f"SELECT unanswered, error FROM messages WHERE id = {silent_id}")[0]
    assert unanswered == 2 and "no submit_sm_resp to 2 submit_sm" in error
    # The carrier may have delivered it and will charge for it: no refund.
    assert [e for e in rig.operator.ledger("p1") if e["kind"] == "refund"] == []
    assert rig.operator.balance("p1") == CREDITS - 2 * PRICE


async def test_an_early_receipt_is_matched_when_its_response_is_recorded_whatever_waits(rig_factory):
    rig: Rig = await rig_factory(behaviour=ReceiptLongBeforeResponse(delay=1.0))
    now = int(time.time() * 1000)
    strays = [IncomingReceipt("carrier", f"stray{i}", [f"s:stray{i}"], int(DeliveryState.DELIVERED), "DELIVRD", None, None) for i in range(3_500)]
    stored = await rig.store.write(receipts.apply_receipts, strays, now - 60_000)
    assert stored.unmatched == 3_500
    async with rig.delivering():
        (answer,) = await rig.send([entry(number(3))])
        message_id = int(answer["messageid"])
        # Answered 1 s after its receipt; the sweep would take far longer to find it, if ever.
        await wait_for(
            lambda: rig.operator.sql(f"SELECT state FROM messages WHERE id = {message_id}") == [(int(DeliveryState.DELIVERED),)], timeout=6
        )
    # It did wait unmatched first, and was matched by its key; the strays still wait.
    assert rig.operator.sql("SELECT count(*) FROM unmatched_receipts WHERE matched_at IS NOT NULL") == [(1,)]
    assert rig.operator.sql("SELECT count(*) FROM unmatched_receipts WHERE matched_at IS NULL") == [(3_500,)]
    assert rig.operator.sql("SELECT count(*) FROM unmatched_receipt_keys") == [(3_500,)]


async def test_a_message_whose_receipt_never_comes_ends_sent_to_network_after_validity_and_grace(rig_factory):
    rig: Rig = await rig_factory(env={"SMSGW_VALIDITY_SECONDS": "2", "SMSGW_CALLBACK_RETRY_BASE_SECONDS": "1"}, behaviour=NeverReceipts())
    receiver = CallbackReceiver(failures=0)
    await rig.store.set_callback("p1", receiver.url, "secret")
    settings = DispatchSettings(sweep_interval=0.2, expire_interval=0.3, receipt_grace_seconds=1.0)
    try:
        async with rig.delivering(settings):
            (answer,) = await rig.send([entry(number(4))])
            message_id = int(answer["messageid"])
            await wait_for(lambda: rig.operator.sql(f"SELECT state FROM messages WHERE id = {message_id}") == [(int(DeliveryState.SENT_TO_NETWORK),)])
            assert (await rig.dlr(answer["messageid"]))["delivery-status"] == int(DeliveryState.SENT_TO_NETWORK)
            await wait_for(lambda: receiver.received, timeout=20)
    finally:
        receiver.close()
    report = await rig.dlr(answer["messageid"])
    assert (report["delivery-status"], report["delivery-description"]) == (8, "SentToNetwork")
    assert DeliveryState(report["delivery-status"]).is_final
    ((body, _, _),) = receiver.received
    assert orjson.loads(body)["description"] == "SentToNetwork" and orjson.loads(body)["messageid"] == answer["messageid"]
    done_at, expires_at = rig.operator.sql(f"SELECT done_at, expires_at FROM messages WHERE id = {message_id}")[0]
    assert done_at >= expires_at + 1000  # not before validity plus grace
    assert rig.operator.balance("p1") == CREDITS - PRICE  # the carrier took it: no refund
    # No longer tracked: a receipt that comes after all changes nothing and reports nothing.
    (smsc_id,) = rig.operator.sql(f"SELECT smsc_message_id FROM message_parts WHERE message_id = {message_id}")[0]
    late = IncomingReceipt("carrier", smsc_id, [f"s:{smsc_id.lower()}"], int(DeliveryState.DELIVERED), "DELIVRD", None, None)
    outcome = await rig.store.write(outcomes.record_outcomes, [], [], [], [late], int(time.time() * 1000), rig.settings.timezone)
    assert (outcome.matched, outcome.finished, outcome.callbacks) == (1, [], 0)
    assert (await rig.dlr(answer["messageid"]))["delivery-description"] == "SentToNetwork"
