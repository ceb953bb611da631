"""Fixtures for the SMPP tests: SMSC peers over real TCP on 127.0.0.1, and connectors that
are always stopped."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import smpp34

from smsgw.connectors.smpp.client import Receipt, SmppConnector
from smsgw.connectors.smpp.pdu import SubmitSm
from smsgw.connectors.smpp.segments import concatenation_of, split_udh
from smsgw.connectors.smpp.simulator import SmscSimulator
from smsgw.domain.encoding import decode

LOOPBACK = "127.0.0.1"


def ordinary_number(index: int) -> str:
    """A Kenyan-looking number that no test-number suffix of the simulator catches (ends in 0)."""
    return f"2547{index % 10_000_000:07d}0"


@dataclass(frozen=True)
class ReceivedPart:
    destination: str
    text: str
    reference: int | None
    total: int
    number: int
    source: str = ""  # the sender (shortcode), where the peer reports it


class OurSimulatorPeer:
    """Our SmscSimulator behind the interface the shared delivery test uses."""

    name = "simulator"

    def __init__(self, **options: object) -> None:
        options.setdefault("test_numbers", True)
        self.simulator = SmscSimulator(**options)  # type: ignore[arg-type]

    async def start(self) -> int:
        return await self.simulator.start(LOOPBACK, 0)

    async def stop(self) -> None:
        await self.simulator.stop()

    def parts(self) -> list[ReceivedPart]:
        return [
            ReceivedPart(
                record.destination,
                record.text,
                record.concatenation.reference if record.concatenation else None,
                record.concatenation.total if record.concatenation else 1,
                record.concatenation.number if record.concatenation else 1,
            )
            for record in self.simulator.received
        ]


class Smpp34Peer:
    """smpp34.Server (a Rust SMPP implementation) as an independent SMSC: accepts every
    submit_sm with a decimal id and sends a text-only DELIVRD receipt to the session."""

    name = "smpp34"

    def __init__(self) -> None:
        self._ids = itertools.count(900_000_001)
        self._parts: list[ReceivedPart] = []
        self._sessions: dict[str, smpp34.Esme] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.receipts_answered: list[int] = []

    async def start(self) -> int:
        # smpp34.Server cannot report the port it bound, so pick a free one first.
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        self._server = smpp34.Server(LOOPBACK, port, system_id="SMPP34")
        await self._server.start()
        self._drain = asyncio.create_task(self._drain_events())
        return port

    async def stop(self) -> None:
        self._drain.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._drain, *self._tasks, return_exceptions=True)
        await self._server.stop()

    async def _drain_events(self) -> None:
        # The server must have its events taken continuously, or it stalls.
        while True:
            event = await self._server.next()
            if isinstance(event, smpp34.Esme):
                self._sessions[event.session_id] = event
            elif isinstance(event, smpp34.SubmitSmEvent):
                message_id = str(next(self._ids))
                self._record(event)
                event.accept(message_id)
                esme = self._sessions.get(event.session_id)
                if esme is not None and esme.can_receive and event.registered_delivery & 1:
                    task = asyncio.create_task(self._receipt(esme, event, message_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            elif isinstance(event, smpp34.Unbound):
                self._sessions.pop(event.session_id, None)

    def _record(self, event: smpp34.SubmitSmEvent) -> None:
        tlvs = {tlv.tag: tlv.value for tlv in event.tlvs}
        pdu = SubmitSm(esm_class=event.esm_class, short_message=event.short_message, tlvs=tlvs)
        _, body = split_udh(pdu.content, pdu.esm_class)
        where = concatenation_of(pdu)
        self._parts.append(
            ReceivedPart(
                event.destination_addr,
                decode(body, event.data_coding),
                where.reference if where else None,
                where.total if where else 1,
                where.number if where else 1,
                event.source_addr,
            )
        )

    async def _receipt(self, esme: smpp34.Esme, event: smpp34.SubmitSmEvent, message_id: str) -> None:
        text = f"id:{message_id} sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:"
        response = await esme.deliver_sm(
            source_addr=event.destination_addr,
            destination_addr=event.source_addr,
            esm_class=0x04,
            short_message=text.encode("ascii"),
        )
        self.receipts_answered.append(response.command_status)

    def parts(self) -> list[ReceivedPart]:
        return list(self._parts)


@pytest.fixture
async def simulator_factory() -> AsyncIterator[Callable[..., Awaitable[SmscSimulator]]]:
    started: list[SmscSimulator] = []

    async def make(**options: object) -> SmscSimulator:
        options.setdefault("test_numbers", True)  # the fault tests pick behaviours by number
        simulator = SmscSimulator(**options)  # type: ignore[arg-type]
        await simulator.start(LOOPBACK, 0)
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        await simulator.stop()


@pytest.fixture
async def connector_factory() -> AsyncIterator[Callable[..., SmppConnector]]:
    made: list[SmppConnector] = []

    def make(port: int, **options: object) -> SmppConnector:
        options.setdefault("reconnect_min", 0.05)
        options.setdefault("reconnect_max", 0.5)
        options.setdefault("response_timeout", 3.0)
        options.setdefault("bind_wait", 5.0)
        system_id = options.pop("system_id", "smsgw")
        password = options.pop("password", "secret")
        connector = SmppConnector("test", LOOPBACK, port, system_id, password, **options)  # type: ignore[arg-type]
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await asyncio.wait_for(connector.stop(), 5)


class ReceiptBox:
    """An on_receipt callback that keeps what it gets."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []

    async def __call__(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)
