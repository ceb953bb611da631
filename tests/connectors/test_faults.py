"""The connector when the SMSC misbehaves: dropped connections, throttling, silence,
rejections, garbage, wrong credentials. All over TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Awaitable, Callable

from smsgw.connectors.base import MobileOriginated, OutboundMessage, Receipt, SubmitOutcome, Verdict
from smsgw.connectors.smpp import pdu as smpp
from smsgw.connectors.smpp.client import SmppConnector
from smsgw.connectors.smpp.receipt import smsc_ids_match
from smsgw.connectors.smpp.simulator import SmscSimulator
from smsgw.domain.encoding import Encoding

from ..helpers import wait_for
from .conftest import LOOPBACK, ReceiptBox, ordinary_number

SimulatorFactory = Callable[..., Awaitable[SmscSimulator]]
ConnectorFactory = Callable[..., SmppConnector]


def message(index: int, destination: str | None = None, text: str | None = None) -> OutboundMessage:
    return OutboundMessage(index, "SMSGW", destination or ordinary_number(index), text or f"message number {index}", Encoding.GSM7)


async def submit_until_accepted(connector: SmppConnector, item: OutboundMessage, attempts: int = 15) -> tuple[SubmitOutcome, int]:
    """What the dispatcher does: resubmit after a temporary failure (bounded)."""
    for attempt in range(1, attempts + 1):
        outcome = await connector.submit(item)
        if outcome.verdict is not Verdict.RETRY:
            return outcome, attempt
        await asyncio.sleep(0.02)
    return outcome, attempts


async def started(connector: SmppConnector) -> SmppConnector:
    await connector.start()
    assert await connector.wait_bound(5), connector.last_error
    return connector


async def test_dropped_connection_with_a_full_window_loses_nothing(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    window = 16
    simulator = await simulator_factory(behaviour="drop", drop_after=120, drop_hold=window, drop_hold_timeout=2.0, max_drops=3)
    connector = await started(connector_factory(simulator.port, window=window))
    messages = [message(i) for i in range(500)]

    results = await asyncio.wait_for(asyncio.gather(*(submit_until_accepted(connector, m) for m in messages)), 30)

    assert all(outcome.ok for outcome, _ in results), [o for o, _ in results if not o.ok][:3]
    assert simulator.drops == 3
    # Each drop happened with the whole window unanswered, and never more than the window.
    assert simulator.max_outstanding == window
    assert connector.window_peak <= window
    assert connector.stats["lost_in_flight"] >= 3 * window
    assert connector.stats["reconnects"] >= 3
    # Every in-flight loss came back to the caller as temporary and was resubmitted.
    assert sum(attempts - 1 for _, attempts in results) == connector.stats["lost_in_flight"]
    assert {m.text for m in messages} <= set(simulator.texts)
    assert connector.window_in_use == 0


async def test_smsc_throttling_above_its_tps(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    smsc_tps = 150
    simulator = await simulator_factory(behaviour="throttle", throttle_tps=smsc_tps)
    connector = await started(connector_factory(simulator.port, window=32, throttle_hold=0.3))  # no TPS limit of its own
    messages = [message(i) for i in range(450)]

    results = await asyncio.wait_for(asyncio.gather(*(submit_until_accepted(connector, m) for m in messages)), 30)

    assert all(outcome.ok for outcome, _ in results)
    assert connector.stats["throttled"] > 0
    accepted = sorted(record.received_at for record in simulator.received if record.status == smpp.ESME_ROK)
    assert len(accepted) >= len(messages)
    accepted_rate = (len(accepted) - 1) / (accepted[-1] - accepted[0])
    assert 0.5 < accepted_rate / smsc_tps < 1.3, accepted_rate
    # It slowed down instead of hammering: far fewer refusals than accepted submits.
    assert simulator.refused < 2 * len(messages)


async def test_connector_tps_limit_paces_submits(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    tps = 250
    simulator = await simulator_factory()
    connector = await started(connector_factory(simulator.port, tps=tps))
    await asyncio.wait_for(asyncio.gather(*(connector.submit(message(i)) for i in range(375))), 20)
    # Measured without the first tenth of the messages: a start delayed by a busy machine (375 submits begin
    # at once) shortens the span from the first message and overstates the rate.
    times = sorted(record.received_at for record in simulator.received)[len(simulator.received) // 10 :]
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 0.6 < rate / tps < 1.1, rate  # never faster; slower only on a starved CPU


async def test_every_nth_throttled_submit_is_resent_by_the_connector(
    simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory
) -> None:
    simulator = await simulator_factory(behaviour="throttle", throttle_every=5)
    connector = await started(connector_factory(simulator.port, throttle_hold=0.05))
    outcomes = await asyncio.wait_for(asyncio.gather(*(connector.submit(message(i)) for i in range(100))), 20)
    assert all(outcome.ok for outcome in outcomes)
    assert connector.stats["throttled"] == simulator.refused >= 20
    assert simulator.responses_by_status[smpp.ESME_ROK] == 100


async def test_permanent_and_exhausted_temporary_refusals(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory()
    connector = await started(connector_factory(simulator.port, max_throttle_retries=2, throttle_hold=0.05))
    rejected, throttled, queue_full, fine = await asyncio.wait_for(
        asyncio.gather(
            connector.submit(message(1, "254700000002")),
            connector.submit(message(2, "254700000005")),
            connector.submit(message(3, "254700000006")),
            connector.submit(message(4)),
        ),
        10,
    )
    assert (rejected.code, rejected.verdict, rejected.smsc_message_ids) == (smpp.ESME_RINVDSTADR, Verdict.FAILED, ())
    assert "ESME_RINVDSTADR" in rejected.reason
    assert (throttled.code, throttled.verdict) == (smpp.ESME_RTHROTTLED, Verdict.RETRY)
    assert (queue_full.code, queue_full.verdict) == (smpp.ESME_RMSGQFUL, Verdict.RETRY)
    assert simulator.submits_by_destination["254700000005"] == 3  # first try + 2 resends
    assert fine.ok


async def test_unsendable_message_is_refused_before_the_wire(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory()
    connector = await started(connector_factory(simulator.port))
    outcome = await connector.submit(OutboundMessage(1, "A-sender-id-far-too-long", ordinary_number(1), "hi", Encoding.GSM7))
    assert (outcome.code, outcome.verdict) == (smpp.ESME_RINVSRCADR, Verdict.FAILED)
    assert simulator.submits == 0 and connector.window_in_use == 0


async def test_receipt_before_response(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory(behaviour="early")
    box = ReceiptBox()
    connector = await started(connector_factory(simulator.port, on_receipt=box))
    early = 0

    async def send(index: int) -> SubmitOutcome:
        nonlocal early
        outcome = await connector.submit(message(index))
        if any(smsc_ids_match(r.smsc_message_id, outcome.smsc_message_ids[0]) for r in box.receipts):
            early += 1
        return outcome

    outcomes = await asyncio.wait_for(asyncio.gather(*(send(i) for i in range(50))), 10)
    assert all(outcome.ok for outcome in outcomes)
    await wait_for(lambda: len(box.receipts) == 50, 5, "50 receipts")
    assert early >= 25  # the receipt was in the gateway's hands before submit() returned
    ids = {outcome.smsc_message_ids[0] for outcome in outcomes}
    assert {receipt.smsc_message_id for receipt in box.receipts} == ids


async def test_wrong_password_is_reported_and_retried_with_backoff(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory(system_id="smsgw", password="secret")
    connector = connector_factory(simulator.port, password="guess", reconnect_min=0.05, reconnect_max=0.4, bind_wait=0.3)
    await connector.start()
    assert not await connector.wait_bound(1.6)
    assert connector.last_error is not None and "ESME_RINVPASWD" in connector.last_error
    assert "check system_id and password" in connector.last_error
    attempts = list(simulator.bind_attempt_times)
    assert 4 <= len(attempts) <= 12, len(attempts)  # backing off, not hammering
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert max(gaps[-2:]) > 2 * gaps[0]
    outcome = await connector.submit(message(1))
    assert (outcome.code, outcome.verdict, outcome.unanswered) == (None, Verdict.RETRY, False)
    assert "ESME_RINVPASWD" in outcome.reason
    assert simulator.binds == 0 and connector.stats["bind_failures"] == len(simulator.bind_attempt_times)

    stranger = connector_factory(simulator.port, system_id="stranger", password="secret")
    await stranger.start()
    await wait_for(lambda: stranger.last_error is not None, 3, "a bind failure")
    assert "ESME_RBINDFAIL" in stranger.last_error

    right = await started(connector_factory(simulator.port, system_id="smsgw", password="secret"))
    assert (await right.submit(message(2))).ok


async def test_unanswered_submits_time_out_keep_their_slot_then_rebind(
    simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory
) -> None:
    simulator = await simulator_factory()
    connector = await started(connector_factory(simulator.port, window=4, response_timeout=0.3))
    silent = await asyncio.wait_for(connector.submit(message(1, "254700000007")), 5)
    assert (silent.code, silent.verdict, silent.unanswered) == (None, Verdict.RETRY, True)
    # The submit_sm is still unanswered on the wire: its slot stays taken.
    assert connector.window_in_use == 1
    assert (await connector.submit(message(2))).ok
    # A second orphan fills half the window: the session is replaced, which frees both.
    assert (await asyncio.wait_for(connector.submit(message(3, "254700000007")), 5)).verdict is Verdict.RETRY
    await wait_for(lambda: connector.stats["binds"] == 2 and connector.bound, 5, "a new bind")
    assert connector.window_in_use == 0
    assert (await connector.submit(message(4))).ok
    assert simulator.max_outstanding <= 4


async def test_connection_dropped_on_a_submit(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory()
    connector = await started(connector_factory(simulator.port))
    outcome = await asyncio.wait_for(connector.submit(message(1, "254700000008")), 5)
    assert (outcome.code, outcome.verdict, outcome.unanswered) == (None, Verdict.RETRY, True)
    assert "connection closed" in outcome.reason
    await wait_for(lambda: connector.stats["binds"] == 2, 5, "a rebind")
    assert (await connector.submit(message(2))).ok


async def test_receipt_handler_failure_makes_the_smsc_redeliver(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory(redelivery_delay=0.05)
    refused_once: set[str] = set()
    kept: list[Receipt] = []

    async def flaky_store(receipt: Receipt) -> None:
        if receipt.smsc_message_id not in refused_once:
            refused_once.add(receipt.smsc_message_id)
            raise RuntimeError("database unavailable")
        kept.append(receipt)

    connector = await started(connector_factory(simulator.port, on_receipt=flaky_store))
    outcomes = await asyncio.wait_for(asyncio.gather(*(connector.submit(message(i)) for i in range(10))), 5)
    await wait_for(lambda: len(kept) == 10, 5, "redelivered receipts")
    assert {receipt.smsc_message_id for receipt in kept} == {o.smsc_message_ids[0] for o in outcomes}
    assert simulator.receipts_refused == 10 and simulator.receipts_acked == 10
    assert connector.stats["receipt_handler_errors"] == 10


async def test_delayed_receipts_arrive_later(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory(behaviour="delayed", receipt_delay=0.4)
    box = ReceiptBox()
    connector = await started(connector_factory(simulator.port, on_receipt=box))
    sent_at = time.monotonic()
    assert (await connector.submit(message(1))).ok
    assert (await connector.submit(message(2, "254700000001"))).ok  # undeliverable by number
    await wait_for(lambda: len(box.receipts) == 2, 5, "two receipts")
    assert time.monotonic() - sent_at >= 0.35
    states = {receipt.stat for receipt in box.receipts}
    assert states == {"DELIVRD", "UNDELIV"}


async def test_stop_unbinds_politely(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory()
    connector = await started(connector_factory(simulator.port, bind_mode="transmitter_receiver"))
    assert (await connector.submit(message(1))).ok
    await asyncio.wait_for(connector.stop(), 5)
    assert simulator.unbinds == 2
    outcome = await connector.submit(message(2))
    assert (outcome.code, outcome.verdict, outcome.unanswered) == (None, Verdict.RETRY, False)


# --- a hand-driven SMSC for what no well-behaved peer does ---------------------------------


class ScriptedSmsc:
    """Accepts any bind, then lets the test read and write raw PDUs on each connection."""

    def __init__(self, answer_enquire_link: bool = True) -> None:
        self.answer_enquire_link = answer_enquire_link
        self.connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.received: asyncio.Queue[smpp.Pdu] = asyncio.Queue()
        self.connection_count = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connection_count += 1
        self._writers.append(writer)
        bind = await smpp.read_pdu(reader)
        writer.write(smpp.encode_pdu(smpp.response_to(bind, smpp.ESME_ROK, system_id="SCRIPTED")))
        await self.connections.put((reader, writer))
        try:
            while True:
                pdu = await smpp.read_pdu(reader)
                if isinstance(pdu, smpp.EnquireLink):
                    if self.answer_enquire_link:
                        writer.write(smpp.encode_pdu(smpp.response_to(pdu)))
                    continue
                await self.received.put(pdu)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


async def next_received(smsc: ScriptedSmsc) -> smpp.Pdu:
    return await asyncio.wait_for(smsc.received.get(), 5)


async def test_garbage_from_the_smsc_is_answered_and_survived(connector_factory: ConnectorFactory) -> None:
    smsc = ScriptedSmsc()
    port = await smsc.start()
    mobile: list[MobileOriginated] = []

    async def on_mo(message: MobileOriginated) -> None:
        mobile.append(message)

    try:
        connector = await started(connector_factory(port, on_mobile_originated=on_mo))
        _, writer = await asyncio.wait_for(smsc.connections.get(), 5)

        writer.write(struct.pack(">IIII", 16, 0x00000077, 0, 31))  # unknown command
        nack = await next_received(smsc)
        assert (type(nack), nack.command_status, nack.sequence_number) == (smpp.GenericNack, smpp.ESME_RINVCMDID, 31)

        writer.write(struct.pack(">IIII", 19, smpp.DELIVER_SM, 0, 32) + b"abc")  # body cut short
        nack = await next_received(smsc)
        assert (type(nack), nack.command_status, nack.sequence_number) == (smpp.GenericNack, smpp.ESME_RINVCMDLEN, 32)

        writer.write(smpp.encode_pdu(smpp.SubmitSmResp(sequence_number=999, message_id="nobody-asked")))
        mo = smpp.DeliverSm(sequence_number=33, source_addr="254711111111", destination_addr="SMSGW", short_message=b"STOP")
        writer.write(smpp.encode_pdu(mo))
        answer = await next_received(smsc)
        assert (type(answer), answer.command_status, answer.sequence_number) == (smpp.DeliverSmResp, smpp.ESME_ROK, 33)
        assert [(m.source, m.text) for m in mobile] == [("254711111111", "STOP")]
        assert connector.stats["unexpected_responses"] == 1

        writer.write(smpp.encode_pdu(smpp.DataSm(sequence_number=34, esm_class=0x04, tlvs={0x001E: b"77\x00", 0x0427: b"\x02"})))
        answer = await next_received(smsc)
        assert (type(answer), answer.command_status) == (smpp.DataSmResp, smpp.ESME_ROK)
        assert connector.stats["receipts"] == 1

        writer.write(struct.pack(">IIII", 0x10000000, smpp.SUBMIT_SM_RESP, 0, 35))  # framing lost
        nack = await next_received(smsc)
        assert (type(nack), nack.command_status, nack.sequence_number) == (smpp.GenericNack, smpp.ESME_RINVCMDLEN, 35)
        await asyncio.wait_for(smsc.connections.get(), 5)  # it reconnected and bound again
        assert connector.stats["garbled_pdus"] == 3
    finally:
        await smsc.stop()


async def test_smsc_unbind_is_answered_then_the_connector_binds_again(connector_factory: ConnectorFactory) -> None:
    smsc = ScriptedSmsc()
    port = await smsc.start()
    try:
        connector = await started(connector_factory(port))
        _, writer = await asyncio.wait_for(smsc.connections.get(), 5)
        writer.write(smpp.encode_pdu(smpp.Unbind(sequence_number=5)))
        answer = await next_received(smsc)
        assert (type(answer), answer.sequence_number) == (smpp.UnbindResp, 5)
        await asyncio.wait_for(smsc.connections.get(), 5)
        assert smsc.connection_count == 2
        await wait_for(lambda: connector.bound, 5, "the new bind")
    finally:
        await smsc.stop()


async def test_missing_enquire_link_resp_tears_the_connection_down(connector_factory: ConnectorFactory) -> None:
    smsc = ScriptedSmsc(answer_enquire_link=False)
    port = await smsc.start()
    try:
        connector = await started(connector_factory(port, enquire_link_interval=0.1, response_timeout=0.2))
        await asyncio.wait_for(smsc.connections.get(), 5)
        await asyncio.wait_for(smsc.connections.get(), 5)  # torn down, connected again
        assert connector.stats["enquire_link_timeouts"] >= 1
        assert "enquire_link_resp" in (connector.last_error or "")
    finally:
        await smsc.stop()


async def test_sequence_numbers_wrap_to_one(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory()
    connector = await started(connector_factory(simulator.port))
    session = connector._transmitter.session
    assert session is not None
    session.last_sequence = 0x7FFFFFFE
    for index in range(3):
        assert (await connector.submit(message(index))).ok
    assert [record.sequence_number for record in simulator.received] == [0x7FFFFFFF, 1, 2]


async def test_simulator_bookkeeping_is_bounded(simulator_factory: SimulatorFactory, connector_factory: ConnectorFactory) -> None:
    simulator = await simulator_factory(max_received=5)
    connector = await started(connector_factory(simulator.port))
    outcomes = await asyncio.wait_for(asyncio.gather(*(connector.submit(message(i)) for i in range(12))), 5)
    assert all(outcome.ok for outcome in outcomes)
    assert simulator.submits == 12
    assert len(simulator.received) == len(simulator.texts) == len(simulator.submits_by_destination) == 5
