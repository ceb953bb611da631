"""One ESME connection to the partner SMPP server, from bind to unbind.

It runs on the session core (`connectors/smpp/channel.py`) the carrier-side client shares.
Reading never waits on the store: a submit_sm is admitted (bound as a transmitter, within
the account's window and rate) at once and decided by a task of its own, so enquire_link and
the responses to our deliver_sm keep flowing while the store commits. The ESME gets
ESME_RTHROTTLED past its window or rate, never a dropped connection. A PDU that cannot be
decoded is answered (its response with the error status, or generic_nack) and the
connection closed only when the framing is lost. An ESME that stops reading its answers
stops being read, so what one bind holds in memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from .. import metrics
from ..connectors.smpp.channel import DEFAULT_MAX_WRITE_BUFFER, PduChannel
from ..connectors.smpp.pdu import (
    DEFAULT_MAX_PDU_LENGTH,
    ESME_RALYBND,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_ROK,
    ESME_RSUBMITFAIL,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    INTERFACE_VERSION_34,
    TLV_SC_INTERFACE_VERSION,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    EnquireLink,
    Pdu,
    PduError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    response_to,
)
from .assembly import Assembler, Refused, Whole

if TYPE_CHECKING:
    from ..store.smpp_accounts import SmppAccount
    from ..store.store import Partner
    from .server import PartnerSmppServer

log = logging.getLogger("smsgw.smpp_server")

# Past this many octets of answers the ESME has not read, it is not read either.
MAX_WRITE_BUFFER = DEFAULT_MAX_WRITE_BUFFER
# The longest PDU an ESME may send: a submit_sm with a 64 KiB message_payload.
MAX_PDU_LENGTH = DEFAULT_MAX_PDU_LENGTH


class PartnerSession(PduChannel):
    """One ESME's connection, on the session core shared with the carrier-side client."""

    def __init__(self, server: PartnerSmppServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        super().__init__(
            reader, writer, name=f"unbound@{address}", log=log, max_pdu_length=MAX_PDU_LENGTH, max_write_buffer=MAX_WRITE_BUFFER, answer_in_kind=True
        )
        self.server = server
        self.address = address
        self.account: SmppAccount | None = None
        self.partner: Partner | None = None
        self.can_transmit = False
        self.can_receive = False
        self.bind_type = ""
        self.unbinding = False
        self.unanswered = 0  # submit_sm not yet answered, held parts included
        self.deliver_sm_unanswered = 0  # deliver_sm (receipts, inbound messages) sent, not yet answered
        self.assembler = Assembler(server.settings.smpp_idle_seconds)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._unbind_sequence = 0

    @property
    def bound(self) -> bool:
        return self.account is not None

    def close(self, reason: str) -> None:
        if self.open:
            log.info("%s: closing: %s", self.name, reason)
        super().close(reason)

    async def run(self) -> None:
        watchdog = self._loop.create_task(self._watch())
        try:
            await super().run()
        finally:
            watchdog.cancel()
            self.assembler.drop_all()
            self.server.detach(self)

    def on_garbled(self, exc: PduError, answer: Pdu | None, *, framing_lost: bool) -> None:  # noqa: ARG002 - counted alike
        self.server.stats["garbled_pdus"] += 1

    async def handle_request(self, pdu: Pdu) -> None:
        await self._dispatch(pdu)
        if self.unbinding:
            # Nothing more is read: what is being decided is answered, then unbind_resp.
            await self._finish_in_flight()

    async def _dispatch(self, pdu: Pdu) -> None:
        if isinstance(pdu, EnquireLink):
            self.send(response_to(pdu))
        elif isinstance(pdu, (BindTransmitter, BindReceiver, BindTransceiver)):
            if self.bound:
                self.send(response_to(pdu, ESME_RALYBND))
            else:
                await self._bind(pdu)
        elif isinstance(pdu, Unbind):
            self.unbinding = True
            self._unbind_sequence = pdu.sequence_number
        elif isinstance(pdu, SubmitSm):
            if not self.bound or not self.can_transmit:
                self.send(response_to(pdu, ESME_RINVBNDSTS))
            else:
                self._admit(pdu)
        elif isinstance(pdu, DataSm):
            self.send(response_to(pdu, ESME_RINVCMDID))
        else:
            # deliver_sm and outbind go the other way.
            self.send(response_to(pdu, ESME_RINVBNDSTS if self.bound else ESME_RINVCMDID))

    async def _bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> None:
        status, close = await self.server.bind(self, pdu)
        if status != ESME_ROK:
            self.send(response_to(pdu, status))
            if close:
                self.close("bind refused")
            return
        if self.account is not None:
            self.name = f"{self.account.system_id}@{self.address}"
        self.can_transmit = pdu.can_transmit
        self.can_receive = pdu.can_receive
        self.send(response_to(pdu, ESME_ROK, system_id=self.server.system_id, tlvs={TLV_SC_INTERFACE_VERSION: bytes((INTERFACE_VERSION_34,))}))
        if self.can_receive:
            self.server.deliveries_wanted()

    # -- submit_sm ---------------------------------------------------------------------------

    def _admit(self, pdu: SubmitSm) -> None:
        account = self.account
        assert account is not None
        over = "window" if self.unanswered >= account.window else None if self.server.take_rate(account) else "rate"
        if over is not None:
            self.server.stats["throttled"] += 1
            metrics.smpp_throttled(account.system_id, over)
            metrics.smpp_submit_answered(account.system_id, ESME_RTHROTTLED)
            self.send(SubmitSmResp(sequence_number=pdu.sequence_number, command_status=ESME_RTHROTTLED))
            return
        self.unanswered += 1
        try:
            whole = self.assembler.add(pdu)
        except Refused as refused:
            log.debug("%s: submit_sm refused: %s", self.name, refused)
            self._answer([pdu], refused.status)
            return
        for late in self.assembler.expired():
            self._answer(late, ESME_RSUBMITFAIL)
        if whole is not None:
            task = self._loop.create_task(self._accept(whole))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _accept(self, whole: Whole) -> None:
        assert self.account is not None and self.partner is not None
        try:
            status, message_id = await self.server.accept(self.partner, self.account, whole)
        except Exception:
            log.exception("%s: submit_sm could not be decided", self.name)
            status, message_id = ESME_RSYSERR, ""
        self._answer(whole.pdus, status, message_id)

    def _answer(self, pdus: list[SubmitSm], status: int, message_id: str = "") -> None:
        if self.account is not None:
            metrics.smpp_submit_answered(self.account.system_id, status, len(pdus))
        for pdu in pdus:
            self.unanswered -= 1
            self.send(SubmitSmResp(sequence_number=pdu.sequence_number, command_status=status, message_id=message_id if status == ESME_ROK else ""))

    async def _finish_in_flight(self) -> None:
        """Unbind: the submit_sm being decided are answered first, then unbind_resp."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.server.settings.smpp_idle_seconds)
        self.send(UnbindResp(sequence_number=self._unbind_sequence))
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()
        self.close("unbound by the ESME")

    # -- supervision -------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Binds within the idle time; once bound, enquire_link after the idle time without a
        PDU from the ESME, and the connection closed after twice that."""
        idle = self.server.settings.smpp_idle_seconds
        started = time.monotonic()
        while self.open:
            await asyncio.sleep(min(idle / 4, 5.0))
            now = time.monotonic()
            if not self.bound:
                if now - started > idle:
                    self.close("no bind")
                continue
            silent = now - self.last_heard
            if silent > 2 * idle:
                self.close(f"nothing heard for {silent:.0f} s")
                return
            if silent > idle:
                with contextlib.suppress(TimeoutError, ConnectionError, PduError):
                    await self.request(EnquireLink(), idle)
            for late in self.assembler.expired():
                self._answer(late, ESME_RSUBMITFAIL)
