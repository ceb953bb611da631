"""One ESME connection to the SMSC simulator: binds, submits handed to their behaviour,
receipts sent and their answers; on the shared session core (`connectors/smpp/channel.py`)."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...base import Concatenation
from ..channel import PduChannel
from ..pdu import (
    ESME_RALYBND,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_ROK,
    TLV_SC_INTERFACE_VERSION,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    GenericNack,
    Pdu,
    PduError,
    SubmitSm,
    Unbind,
    response_to,
)

if TYPE_CHECKING:
    from .server import SmscSimulator

log = logging.getLogger("smsgw.smsc_sim")


@dataclass(slots=True)
class SubmitRecord:
    """One submit_sm as the simulator received it."""

    system_id: str
    sequence_number: int
    source: str
    destination: str
    text: str  # this part's text (user data header removed)
    data_coding: int
    esm_class: int
    registered_delivery: int
    concatenation: Concatenation | None
    received_at: float
    message_id: str = ""  # set when accepted
    status: int | None = None  # command_status answered; None while unanswered


@dataclass(slots=True)
class PendingReceipt:
    system_id: str
    pdu_fields: dict
    attempts: int = 0
    origin: SmscSession | None = None


class SmscSession(PduChannel):
    """One ESME's connection to the simulator, on the session core the gateway's own SMPP
    sessions use."""

    def __init__(self, sim: SmscSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        super().__init__(reader, writer, name=str(peer), log=log, max_write_buffer=sim.max_write_buffer)
        self.sim = sim
        self.peer = peer
        self.system_id = ""
        self.bound = False
        self.can_transmit = False
        self.can_receive = False
        self.unanswered = 0
        self.counters: collections.Counter[str] = collections.Counter()
        self._receipts_in_flight: dict[int, PendingReceipt] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._loop = asyncio.get_running_loop()

    def call_later(self, delay: float, callback: Callable[..., None], *args: object) -> None:
        handle: asyncio.TimerHandle

        def run() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = self._loop.call_later(delay, run)
        self._timers.add(handle)

    def abort(self, reason: str) -> None:
        if self.open:
            log.info("%s: %s", self.peer, reason)
        super().abort(reason)

    def sequence_in_use(self, sequence: int) -> bool:
        return sequence in self._receipts_in_flight

    def answer_submit(self, pdu: SubmitSm, record: SubmitRecord, status: int, message_id: str) -> None:
        if not self.open or record.status is not None:
            return
        record.status = status
        self.unanswered -= 1
        self.sim.responses_by_status[status] += 1
        self.send(response_to(pdu, status, message_id=message_id))

    @property
    def receipt_room(self) -> bool:
        return self.open and self.can_receive and len(self._receipts_in_flight) < self.sim.receipt_window

    def deliver(self, item: PendingReceipt) -> None:
        """Sends the receipt; with a full window it waits among the parked ones instead."""
        if not self.receipt_room:
            self.sim.park(item)
            return
        sequence = self.next_sequence()
        item.attempts += 1
        self._receipts_in_flight[sequence] = item
        self.sim.receipts_sent += 1
        self.send(DeliverSm(sequence_number=sequence, **item.pdu_fields))

    def _receipt_answered(self, response: Pdu) -> None:
        item = self._receipts_in_flight.pop(response.sequence_number, None)
        if item is None:
            return
        if response.command_status == ESME_ROK and isinstance(response, DeliverSmResp):
            self.sim.receipts_acked += 1
        else:
            self.sim.receipts_refused += 1
            self.sim.redeliver(item)
        waiting = self.sim.unpark(self.system_id) if self.receipt_room else None
        if waiting is not None:
            self.deliver(waiting)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            for timer in self._timers:
                timer.cancel()
            self.sim.session_ended(self, list(self._receipts_in_flight.values()))
            self._receipts_in_flight.clear()

    def on_garbled(self, exc: PduError, answer: Pdu | None, *, framing_lost: bool) -> None:  # noqa: ARG002 - counted alike
        self.sim.garbled += 1

    def handle_response(self, pdu: Pdu) -> None:
        if isinstance(pdu, GenericNack):
            self.sim.generic_nacks_received += 1
        self._receipt_answered(pdu)

    async def handle_request(self, pdu: Pdu) -> None:
        self._dispatch(pdu)

    def _dispatch(self, pdu: Pdu) -> None:
        sim = self.sim
        if isinstance(pdu, SubmitSm):
            if not self.bound or not self.can_transmit:
                self.send(response_to(pdu, ESME_RINVBNDSTS))
                return
            sim.on_submit(self, pdu)
        elif isinstance(pdu, EnquireLink):
            self.send(response_to(pdu))
        elif isinstance(pdu, (BindTransmitter, BindReceiver, BindTransceiver)):
            self._bind(pdu)
        elif isinstance(pdu, Unbind):
            self.send(response_to(pdu))
            sim.unbinds += 1
            self.close("unbound by the ESME")
        elif isinstance(pdu, (DeliverSm, DataSm)):
            # data_sm is not offered by this SMSC; deliver_sm is not valid towards an SMSC.
            self.send(response_to(pdu, ESME_RINVCMDID if isinstance(pdu, DataSm) else ESME_RINVBNDSTS))
        else:
            self.send(GenericNack(sequence_number=pdu.sequence_number, command_status=ESME_RINVCMDID))

    def _bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> None:
        sim = self.sim
        if self.bound:
            self.send(response_to(pdu, ESME_RALYBND))
            return
        status = sim.check_credentials(pdu.system_id, pdu.password)
        if status != ESME_ROK:
            sim.bind_failures += 1
            log.info("%s: bind of %r refused: 0x%X", self.peer, pdu.system_id, status)
            self.send(response_to(pdu, status))
            return
        self.bound = True
        self.system_id = pdu.system_id
        self.can_transmit = pdu.can_transmit
        self.can_receive = pdu.can_receive
        sim.binds += 1
        sim.max_concurrent_binds = max(sim.max_concurrent_binds, sim.bound_sessions)
        self.send(response_to(pdu, ESME_ROK, system_id=sim.name, tlvs={TLV_SC_INTERFACE_VERSION: b"\x34"}))
        if self.can_receive:
            sim.receiver_bound(self)
