"""The SMSC simulator's memory stays bounded whatever its ESMEs do: many system_ids binding in
turn, receipts never acknowledged, responses never read."""

from __future__ import annotations

import asyncio
import socket

from smsgw.connectors.smpp import pdu as smpp
from smsgw.connectors.smpp.simulator import SmscSimulator

from ..helpers import wait_for
from .conftest import LOOPBACK, ordinary_number


async def bound(port: int, system_id: str, bind: type[smpp.Pdu] = smpp.BindTransceiver) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(smpp.encode_pdu(bind(sequence_number=1, system_id=system_id, password="pw")))  # type: ignore[call-arg]
    answer = await asyncio.wait_for(smpp.read_pdu(reader), 5)
    assert answer.command_status == smpp.ESME_ROK
    return reader, writer


def submit(sequence: int, index: int) -> bytes:
    return smpp.encode_pdu(
        smpp.SubmitSm(
            sequence_number=sequence, source_addr="SC1", destination_addr=ordinary_number(index), short_message=b"hello", registered_delivery=1
        )
    )


async def test_system_ids_binding_in_turn_leave_bounded_state(simulator_factory):
    simulator: SmscSimulator = await simulator_factory(max_system_ids=20, max_received=50)
    for index in range(60):
        # A transmitter of its own system_id: its receipt has no receiver and is parked.
        reader, writer = await bound(simulator.port, f"esme{index}", smpp.BindTransmitter)
        writer.write(submit(2, index))
        response = await asyncio.wait_for(smpp.read_pdu(reader), 5)
        assert isinstance(response, smpp.SubmitSmResp) and response.command_status == smpp.ESME_ROK
        writer.write(smpp.encode_pdu(smpp.Unbind(sequence_number=3)))
        await asyncio.wait_for(smpp.read_pdu(reader), 5)
        writer.close()
    await wait_for(lambda: simulator.bound_sessions == 0, 5, "every session to end")
    assert simulator.tracked_system_ids <= 20
    assert simulator.parked_receipts <= 20
    assert simulator.receipts_abandoned >= 40
    # The newest system_ids kept their receipts: a receiver binding now gets its own.
    reader, writer = await bound(simulator.port, "esme59", smpp.BindReceiver)
    receipt = await asyncio.wait_for(smpp.read_pdu(reader), 5)
    assert isinstance(receipt, smpp.DeliverSm) and receipt.is_receipt
    writer.close()


async def test_receipts_never_acknowledged_are_capped(simulator_factory):
    simulator: SmscSimulator = await simulator_factory(max_received=300, receipt_window=10)
    reader, writer = await bound(simulator.port, "slow")
    deliver_sm = 0

    async def read_all() -> None:
        nonlocal deliver_sm
        while True:
            if isinstance(await smpp.read_pdu(reader), smpp.DeliverSm):
                deliver_sm += 1

    reading = asyncio.create_task(read_all())  # reads everything, answers no deliver_sm
    try:
        for index in range(1000):
            writer.write(submit(index + 2, index))
        await writer.drain()
        await wait_for(lambda: simulator.submits == 1000, 20, "every submit_sm to be read")
        await asyncio.sleep(0.2)
        assert deliver_sm == 10  # one window, then nothing until they are answered
        assert simulator.parked_receipts <= 300
        assert simulator.receipts_abandoned >= 1000 - 10 - 300
    finally:
        reading.cancel()
        writer.close()


async def test_a_client_that_never_reads_does_not_grow_the_server_buffers(simulator_factory):
    simulator: SmscSimulator = await simulator_factory(max_write_buffer=64 * 1024, max_received=1000)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((LOOPBACK, simulator.port))
    sock.sendall(smpp.encode_pdu(smpp.BindTransceiver(sequence_number=1, system_id="deaf", password="pw")))
    sock.setblocking(False)
    sent = 0
    frame = smpp.encode_pdu(smpp.EnquireLink(sequence_number=7))
    burst = frame * 1000
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30  # a loaded machine reads slowly, but it does stop reading
    try:
        # Send until the server stops reading (our socket's send buffer fills), or 30 s.
        stalled_since = None
        while loop.time() < deadline:
            try:
                sent += sock.send(burst)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or loop.time()
                if loop.time() - stalled_since > 1.0:
                    break
            await asyncio.sleep(0)
        assert stalled_since is not None, "the server read everything a client that never reads sent it"
        (session,) = simulator._sessions
        buffered = session.writer.transport.get_write_buffer_size()
        assert buffered <= 64 * 1024 + len(frame) * 2
        assert sent < 50 * 1024 * 1024
    finally:
        sock.close()
