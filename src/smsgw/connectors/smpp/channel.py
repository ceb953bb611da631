"""The session core every SMPP connection of ours runs on: the carrier-side client
(`client_session`), the partner SMPP server (`smpp_server/session.py`) and the SMSC simulator
(`simulator/session.py`).

A `PduChannel` owns the stream: it numbers what it sends (skipping numbers still in use, its
own waiters' and whatever `sequence_in_use` says the owner holds), writes, awaits responses
(`request`, one waiter per sequence number, `asyncio.timeout` so that a cancellation is never
mistaken for a timeout), reads and decodes frames, and fails every waiter when the connection
ends. What a PDU means is the owner's: a subclass answers requests (`handle_request`),
decides about responses nobody waits for (`handle_response` / `match_response`), counts
garbled input (`on_garbled`) and may stop reading for a while (`back_pressure`).

Garbled input. When the framing is lost (a length that cannot be right) the channel answers
generic_nack and closes: nothing after it can be trusted. A frame that does not decode is
answered and reading goes on: a request with its own response carrying the error status
(`answer_in_kind`, what an ESME waits for) or with generic_nack; a response fails its waiter,
whose outcome is then unknown, and is never answered.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .pdu import (
    DEFAULT_MAX_PDU_LENGTH,
    PDU_CLASSES,
    RESPONSE_BIT,
    GenericNack,
    Pdu,
    PduError,
    decode_pdu,
    encode_pdu,
    read_frame,
)

SEQUENCE_MAX = 0x7FFFFFFF
# Past this many octets of our PDUs the peer has not read, we wait before writing or reading more.
DEFAULT_MAX_WRITE_BUFFER = 256 * 1024


class ChannelClosed(ConnectionError):
    """The connection ended (or was closed) while a response was awaited."""


class PduChannel:
    """One SMPP connection's PDU traffic (see the module docstring)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        name: str,
        log: logging.Logger,
        max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
        max_write_buffer: int = DEFAULT_MAX_WRITE_BUFFER,
        answer_in_kind: bool = False,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.name = name
        self.log = log
        self.max_pdu_length = max_pdu_length
        self.max_write_buffer = max_write_buffer
        self.answer_in_kind = answer_in_kind
        self.open = True
        self.close_reason = ""
        self.last_sequence = 0
        self.last_heard = time.monotonic()  # when the last frame arrived
        self._waiters: dict[int, asyncio.Future[Pdu]] = {}
        self._loop = asyncio.get_running_loop()

    # --- hooks for the owner ----------------------------------------------------------------

    def sequence_in_use(self, sequence: int) -> bool:  # noqa: ARG002 - a hook: owners that hold numbers override it
        """True for a sequence number the owner still holds (beyond the channel's waiters)."""
        return False

    async def handle_request(self, pdu: Pdu) -> None:
        """A request from the peer; reading waits until this returns."""
        raise NotImplementedError

    def handle_response(self, pdu: Pdu) -> None:
        """A response from the peer: by default handed to its waiter, if any."""
        self.match_response(pdu)

    def on_garbled(self, exc: PduError, answer: Pdu | None, *, framing_lost: bool) -> None:
        """A frame that could not be read (`answer`: what went back, if anything)."""

    def on_unmatched_garbled_response(self, exc: PduError) -> None:
        """An unreadable response that no waiter waits for."""

    async def back_pressure(self) -> None:
        """Waits, before the next frame is read, while the peer does not read what we send."""
        if self.writer.transport.get_write_buffer_size() > self.max_write_buffer:
            await self.writer.drain()

    # --- writing ------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._waiters)

    def next_sequence(self) -> int:
        while True:
            self.last_sequence = self.last_sequence % SEQUENCE_MAX + 1
            sequence = self.last_sequence
            if sequence not in self._waiters and not self.sequence_in_use(sequence):
                return sequence

    def send(self, pdu: Pdu) -> None:
        if self.open:
            self.writer.write(encode_pdu(pdu))

    async def request(self, pdu: Pdu, timeout: float) -> Pdu:
        """Sends `pdu` with a fresh sequence number and returns its response.

        Raises PduError when `pdu` cannot be encoded (its command_id is then None) or its
        response cannot be decoded, TimeoutError, ChannelClosed.
        """
        if not self.open:
            raise ChannelClosed(f"{self.name} is closed")
        pdu.sequence_number = self.next_sequence()
        data = encode_pdu(pdu)
        future: asyncio.Future[Pdu] = self._loop.create_future()
        self._waiters[pdu.sequence_number] = future
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(data)
                if self.writer.transport.get_write_buffer_size() > self.max_write_buffer:
                    await self.writer.drain()
                return await future
        except ChannelClosed:
            raise
        except ConnectionError as exc:
            raise ChannelClosed(str(exc) or f"{self.name} connection lost") from None
        finally:
            if self._waiters.get(pdu.sequence_number) is future:
                del self._waiters[pdu.sequence_number]

    def match_response(self, pdu: Pdu) -> bool:
        """Hands `pdu` to the request it answers; False when nothing waits for it (the owner
        decides what that means)."""
        future = self._waiters.pop(pdu.sequence_number, None)
        if future is None:
            return False
        if not future.done():
            future.set_result(pdu)
        return True

    def close(self, reason: str) -> None:
        if not self.open:
            return
        self.open = False
        self.close_reason = reason
        self.writer.close()

    def abort(self, reason: str) -> None:
        """Closes at once, dropping whatever is still unsent."""
        if not self.open:
            return
        self.open = False
        self.close_reason = reason
        self.writer.transport.abort()

    # --- reading ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Reads and dispatches PDUs until the connection ends; then every waiter fails."""
        try:
            while self.open:
                try:
                    frame = await read_frame(self.reader, self.max_pdu_length)
                except PduError as exc:
                    nack = GenericNack(sequence_number=exc.sequence_number, command_status=exc.status)
                    self.send(nack)
                    self.on_garbled(exc, nack, framing_lost=True)
                    self.close(f"{exc} (framing lost)")
                    break
                self.last_heard = time.monotonic()
                try:
                    pdu = decode_pdu(frame)
                except PduError as exc:
                    self._garbled(exc)
                    continue
                if pdu.command_id & RESPONSE_BIT:
                    self.handle_response(pdu)
                else:
                    await self.handle_request(pdu)
                await self.back_pressure()
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            if self.open:
                self.close_reason = self.close_reason or f"connection lost: {exc or type(exc).__name__}"
        finally:
            self.open = False
            self.writer.close()
            lost = ChannelClosed(f"{self.name} connection closed: {self.close_reason or 'closed'}")
            waiters, self._waiters = self._waiters, {}
            for future in waiters.values():
                if not future.done():
                    future.set_exception(lost)

    def _garbled(self, exc: PduError) -> None:
        command_id = exc.command_id or 0
        if command_id & RESPONSE_BIT and command_id != GenericNack.command_id:
            # A response we cannot read: its request's outcome is unknown; never answered.
            future = self._waiters.pop(exc.sequence_number, None)
            if future is not None:
                if not future.done():
                    future.set_exception(exc)
            else:
                self.on_unmatched_garbled_response(exc)
            self.on_garbled(exc, None, framing_lost=False)
            return
        cls = PDU_CLASSES.get(command_id) if self.answer_in_kind else None
        response_class = cls.response_class if cls is not None else None
        answer: Pdu
        if response_class is not None:
            answer = response_class(sequence_number=exc.sequence_number, command_status=exc.status)
        else:
            answer = GenericNack(sequence_number=exc.sequence_number, command_status=exc.status)
        self.send(answer)
        self.on_garbled(exc, answer, framing_lost=False)
