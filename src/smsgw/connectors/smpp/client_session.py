"""One TCP connection of an `SmppConnector` to its SMSC, on the shared session core
(`channel.PduChannel`): what the ESME does with each PDU the SMSC sends.

Orphans are submit_sm given up on (no response in time, or the submitter cancelled): each
still holds its slot of the connector's window, freed by its late response or the end of the
connection, and their sequence numbers are not reused meanwhile. Half a window of orphans
closes the connection (see `client`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from .channel import ChannelClosed, PduChannel
from .pdu import (
    ESME_RINVBNDSTS,
    DataSm,
    DeliverSm,
    EnquireLink,
    GenericNack,
    Outbind,
    Pdu,
    PduError,
    Unbind,
    UnbindResp,
    response_to,
)
from .window import Window

__all__ = ["ChannelClosed", "ClientSession", "InboundHandler"]

# Answers an inbound deliver_sm/data_sm: its response's status, and what to call once that
# response is handed to the connection.
InboundHandler = Callable[[DeliverSm | DataSm, str], Awaitable[tuple[int, Callable[[], None] | None]]]


class ClientSession(PduChannel):
    """One bound (or binding) connection to the SMSC."""

    def __init__(
        self,
        link: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        window: Window,
        stats: Counter[str],
        log: logging.Logger,
        handle_inbound: InboundHandler,
        inbound_concurrency: int,
        max_pdu_length: int,
    ) -> None:
        super().__init__(reader, writer, name=link, log=log, max_pdu_length=max_pdu_length)
        self.link = link
        self.window = window
        self.stats = stats
        self.handle_inbound = handle_inbound
        self.orphans: set[int] = set()  # submit_sm sequence numbers given up on; each holds a window slot
        self._tasks: set[asyncio.Task[None]] = set()
        self._inbound_slots = asyncio.Semaphore(inbound_concurrency)

    def sequence_in_use(self, sequence: int) -> bool:
        return sequence in self.orphans

    def orphan(self, sequence: int) -> None:
        """The submit_sm `sequence` was given up on; its window slot stays held until a late
        response or the end of the session."""
        if not self.open:
            # The session already released its orphans; this slot is free now.
            self.window.release()
            return
        self.orphans.add(sequence)
        if len(self.orphans) >= max(1, self.window.size // 2):
            self.close(f"{len(self.orphans)} submit_sm unanswered")

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if self.orphans:
                self.window.release(len(self.orphans))
                self.orphans.clear()

    # --- what the core hands over ---------------------------------------------------------

    def on_garbled(self, exc: PduError, answer: Pdu | None, *, framing_lost: bool) -> None:
        self.stats["garbled_pdus"] += 1
        if isinstance(answer, GenericNack):
            self.stats["generic_nacks_sent"] += 1
        if framing_lost:
            self.log.error("%s: %s; closing (stream framing lost)", self.link, exc)
        elif answer is None:
            self.log.warning("%s: unreadable response: %s", self.link, exc)
        else:
            self.log.warning("%s: answering generic_nack: %s", self.link, exc)

    def on_unmatched_garbled_response(self, exc: PduError) -> None:
        if exc.sequence_number in self.orphans:
            self.orphans.discard(exc.sequence_number)
            self.window.release()

    def handle_response(self, pdu: Pdu) -> None:
        if isinstance(pdu, GenericNack):
            self.stats["generic_nacks"] += 1
        if self.match_response(pdu):
            return
        if pdu.sequence_number in self.orphans:
            self.orphans.discard(pdu.sequence_number)
            self.window.release()
            self.stats["late_responses"] += 1
        else:
            self.stats["unexpected_responses"] += 1
            self.log.warning("%s: %s with sequence %d answers nothing we sent; dropped", self.link, pdu.name, pdu.sequence_number)

    async def handle_request(self, pdu: Pdu) -> None:
        if isinstance(pdu, (DeliverSm, DataSm)):
            task = asyncio.get_running_loop().create_task(self._inbound(pdu))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(pdu, EnquireLink):
            self.send(response_to(pdu))
        elif isinstance(pdu, Unbind):
            self.log.info("%s: the SMSC unbinds", self.link)
            self.send(UnbindResp(sequence_number=pdu.sequence_number))
            self.close("unbound by the SMSC")
        elif isinstance(pdu, Outbind):
            self.log.warning("%s: ignoring outbind on a client connection", self.link)
        else:
            # bind_* or submit_sm sent to an ESME: not valid in this direction.
            self.send(response_to(pdu, ESME_RINVBNDSTS))

    async def back_pressure(self) -> None:
        await super().back_pressure()
        if self._inbound_slots.locked():
            # Stop reading while too many inbound PDUs are in hand.
            await self._inbound_slots.acquire()
            self._inbound_slots.release()

    async def _inbound(self, pdu: DeliverSm | DataSm) -> None:
        await self._inbound_slots.acquire()
        try:
            status, answered = await self.handle_inbound(pdu, self.link)
        finally:
            self._inbound_slots.release()
        if self.open:
            self.send(response_to(pdu, status))
            if answered is not None:
                answered()
