"""End to end over TCP on 127.0.0.1: our connector against two independent SMSCs, and an
independent ESME (smpplib) against our simulator."""

from __future__ import annotations

import asyncio
import collections
import re
import threading
from collections.abc import AsyncIterator, Callable

import pytest
import smpplib.client
import smpplib.consts
import smpplib.gsm

from smsgw.connectors.smpp.client import OutboundMessage, SmppConnector, destination_address, source_address
from smsgw.connectors.smpp.receipt import smsc_id_keys
from smsgw.connectors.smpp.simulator import SmscSimulator
from smsgw.domain.encoding import encoding_of, split
from smsgw.domain.states import DeliveryState

from ..helpers import wait_for
from .conftest import LOOPBACK, OurSimulatorPeer, ReceiptBox, Smpp34Peer, ordinary_number

MESSAGES = (
    [f"Message {i} from smsgw: your code is {1000 + i}" for i in range(30)]
    + [f"Long GSM message {i} with extension characters {{[€]}} " + "lorem ipsum " * 25 for i in range(3)]
    + [f"Unicode {i}: Привет, 你好, 😀 " * (1 + 4 * i) for i in range(3)]
)


@pytest.fixture(params=["simulator", "smpp34"])
async def smsc_peer(request: pytest.FixtureRequest) -> AsyncIterator[OurSimulatorPeer | Smpp34Peer]:
    peer = OurSimulatorPeer(system_id="smsgw", password="secret") if request.param == "simulator" else Smpp34Peer()
    peer.port = await peer.start()  # type: ignore[union-attr]
    yield peer
    await peer.stop()


async def deliver_and_check_receipts(
    port: int, connector_factory: Callable[..., SmppConnector], received_parts: Callable[[], list], **options: object
) -> SmppConnector:
    """Submit MESSAGES concurrently, then check: every part accepted, every part's receipt
    received and matched to exactly one submitted id, the SMSC reassembles every text."""
    box = ReceiptBox()
    connector = connector_factory(port, on_receipt=box, **options)
    await connector.start()
    assert await connector.wait_bound(5), connector.last_error
    messages = [OutboundMessage(i, "SMSGW", ordinary_number(i), text, encoding_of(text)) for i, text in enumerate(MESSAGES)]
    outcomes = await asyncio.wait_for(asyncio.gather(*(connector.submit(m) for m in messages)), 20)

    for message, outcome in zip(messages, outcomes):
        assert outcome.ok, outcome
        assert len(outcome.smsc_message_ids) == len(split(message.text, message.encoding))
    total_parts = sum(len(outcome.smsc_message_ids) for outcome in outcomes)
    assert total_parts > len(MESSAGES)

    await wait_for(lambda: len(box.receipts) >= total_parts, 10, f"{total_parts} receipts")
    owner_of_key = {}
    for message, outcome in zip(messages, outcomes):
        for smsc_id in outcome.smsc_message_ids:
            for key in smsc_id_keys(smsc_id):
                owner_of_key.setdefault(key, set()).add(message.message_id)
    matched = collections.Counter()
    for receipt in box.receipts:
        owners = set().union(*(owner_of_key.get(key, set()) for key in smsc_id_keys(receipt.smsc_message_id)))
        assert len(owners) == 1, f"receipt {receipt.smsc_message_id} matches {owners}"
        owner = owners.pop()
        assert receipt.state is DeliveryState.DELIVERED and receipt.stat == "DELIVRD"
        assert receipt.source == messages[owner].destination
        matched[owner] += 1
    assert matched == {m.message_id: len(o.smsc_message_ids) for m, o in zip(messages, outcomes)}

    by_destination = collections.defaultdict(list)
    for part in received_parts():
        by_destination[part.destination].append(part)
    for message in messages:
        parts = sorted(by_destination[message.destination], key=lambda part: part.number)
        assert "".join(part.text for part in parts) == message.text
        assert {part.total for part in parts} == {len(parts)}
    return connector


async def test_connector_delivers_with_receipts(smsc_peer: OurSimulatorPeer | Smpp34Peer, connector_factory: Callable[..., SmppConnector]) -> None:
    connector = await deliver_and_check_receipts(smsc_peer.port, connector_factory, smsc_peer.parts, enquire_link_interval=0.05)  # type: ignore[union-attr]
    assert connector.stats["receipts"] >= len(MESSAGES)
    await wait_for(lambda: connector.stats["enquire_links"] >= 2, 3, "enquire_link_resp from the SMSC")
    assert connector.stats["binds"] == 1 and connector.stats["reconnects"] == 0
    assert connector.stats["generic_nacks"] == connector.stats["garbled_pdus"] == 0
    if isinstance(smsc_peer, Smpp34Peer):
        await wait_for(lambda: len(smsc_peer.receipts_answered) >= connector.stats["receipts"], 5, "deliver_sm_resp at smpp34")
        assert set(smsc_peer.receipts_answered) == {0}


@pytest.mark.parametrize("id_format", ["hex", "decimal"])
async def test_transmitter_receiver_binds_and_ids_written_in_the_other_base(id_format: str, connector_factory: Callable[..., SmppConnector]) -> None:
    peer = OurSimulatorPeer(id_format=id_format, receipt_id_format="other", receipt_tlvs=id_format == "hex", receipt_delay=0.05)
    port = await peer.start()
    try:
        connector = await deliver_and_check_receipts(port, connector_factory, peer.parts, bind_mode="transmitter_receiver", concatenation="sar")
        assert peer.simulator.binds == 2
        assert connector.stats["binds"] == 2
        sample = peer.simulator.received[0]
        assert sample.message_id and peer.simulator._receipt_id(sample.message_id) != sample.message_id
    finally:
        await peer.stop()


async def test_payload_concatenation_sends_one_submit_per_message(
    simulator_factory: Callable[..., SmscSimulator], connector_factory: Callable[..., SmppConnector]
) -> None:
    simulator = await simulator_factory()
    box = ReceiptBox()
    connector = connector_factory(simulator.port, concatenation="payload", on_receipt=box)
    await connector.start()
    text = "Unicode payload: Привет " * 20
    outcome = await asyncio.wait_for(connector.submit(OutboundMessage(1, "SMSGW", ordinary_number(1), text, encoding_of(text))), 10)
    assert outcome.ok and len(outcome.smsc_message_ids) == 1
    assert simulator.submits == 1 and simulator.received[0].text == text
    await wait_for(lambda: len(box.receipts) == 1, 5, "the receipt")


def _smpplib_session(port: int, texts: list[str], results: dict) -> None:
    """An independent ESME (smpplib, blocking) that submits `texts` and waits for receipts."""
    client = smpplib.client.Client(LOOPBACK, port, timeout=5, allow_unknown_opt_params=True)
    sent_ids: list[str] = []
    receipts: list[bytes] = []
    client.set_message_sent_handler(lambda pdu: sent_ids.append(pdu.message_id.decode()))
    client.set_message_received_handler(lambda pdu: receipts.append(pdu.short_message))
    client.connect()
    try:
        client.bind_transceiver(system_id="legacy", password="pw")
        parts_sent = 0
        for number, text in enumerate(texts):
            parts, encoding_flag, msg_type_flag = smpplib.gsm.make_parts(text)
            for part in parts:
                client.send_message(
                    source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                    source_addr="SMSGW",
                    dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                    destination_addr=ordinary_number(number),
                    short_message=part,
                    data_coding=encoding_flag,
                    esm_class=msg_type_flag,
                    registered_delivery=True,
                )
                parts_sent += 1
        while len(sent_ids) < parts_sent or len(receipts) < parts_sent:
            client.read_once()
        results["unbind"] = client.unbind().status
    finally:
        client.disconnect()
    results["sent_ids"] = sent_ids
    results["receipts"] = receipts
    results["parts_sent"] = parts_sent


async def test_smpplib_client_against_our_simulator(simulator_factory: Callable[..., SmscSimulator]) -> None:
    simulator = await simulator_factory(system_id="legacy", password="pw", id_format="decimal")
    texts = [f"smpplib message {i}" for i in range(20)] + ["A long one " * 30, "Ünïcödé 😀 " * 10]
    results: dict = {}
    worker = threading.Thread(target=_smpplib_session, args=(simulator.port, texts, results), daemon=True)
    worker.start()
    await wait_for(lambda: not worker.is_alive(), 20, "the smpplib client to finish")
    assert results.get("parts_sent", 0) > len(texts), results
    assert results["unbind"] == 0
    assert simulator.submits == results["parts_sent"] == len(results["sent_ids"])
    assert simulator.receipts_acked == results["parts_sent"]
    receipt_ids = [re.search(rb"id:(\S+)", receipt).group(1).decode() for receipt in results["receipts"]]
    assert sorted(receipt_ids) == sorted(results["sent_ids"])
    assert simulator.unbinds == 1 and simulator.binds == 1
    assert {record.text for record in simulator.received} >= set(texts[:20])


def test_address_numbering_plans() -> None:
    assert source_address("SMSGW") == (5, 0, "SMSGW")
    assert source_address("Bank-2") == (5, 0, "Bank-2")
    assert source_address("22345") == (3, 0, "22345")
    assert source_address("254712345678") == (1, 1, "254712345678")
    assert source_address("+254712") == (1, 1, "254712")
    assert destination_address("+254712345678") == (1, 1, "254712345678")
