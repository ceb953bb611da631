"""The ESME side: one `SmppConnector` per carrier account, used by the dispatcher.

Shape of a connector:

- one supervised link (bind_transceiver), or two (bind_transmitter + bind_receiver) in
  "transmitter_receiver" mode; each link reconnects on any loss with exponential backoff and
  jitter, reset after a successful bind;
- a session per TCP connection: sequence number -> future of its response, a reader task
  that dispatches every PDU, an enquire_link task whose missing answer tears the connection
  down;
- a per-connector window (a semaphore; one slot per unanswered submit_sm) and a token bucket
  for TPS that halves itself while the SMSC throttles and recovers gradually afterwards.

Window accounting. A submit_sm holds its slot until its response arrives. When the response
does not come in `response_timeout`, the caller gets temporary=True but the slot stays held
by the session (the PDU is still unanswered on the wire): a late response frees it, and so
does the end of the connection. When such orphans fill half the window the session is
considered broken and is closed, which frees them all and rebinds. So the SMSC never sees
more than `window` unanswered submit_sm from one connector.

Outcomes (`connectors.base.SubmitOutcome`). Accepted carries the SMSC's id of every part;
otherwise `code` is the SMPP command_status of the failing part, and the verdict says whether
the same submit_sm may succeed later (TEMPORARY_STATUSES, throttling past its retries). Two
failures have no command_status (code None), both retried: no bind within `bind_wait` (or
the connector is stopping), and no submit_sm_resp (a response timeout or the connection lost
while waiting: `unanswered`, the SMSC may or may not have the message).

Receipts. A deliver_sm (or data_sm) whose esm_class says "delivery receipt" or
"intermediate notification" is parsed (`receipt.parse_receipt`) and handed to `on_receipt`;
deliver_sm_resp is sent only once `on_receipt` has returned, so the SMSC keeps a receipt
until the gateway has it, and an exception in `on_receipt` is answered ESME_RX_T_APPN so the
SMSC redelivers. A receipt may arrive before the submit_sm_resp of its message (SMSCs do
that); matching it is the caller's job (`receipt.smsc_id_keys`). Other deliver_sm are
mobile-originated messages, acknowledged after `on_mobile_originated` (default: logged); the
callable it may return is called once the deliver_sm_resp has been handed to the connection, so
the caller can tell a message it answered from one it stored but could not answer.
data_sm is treated like deliver_sm and answered with data_sm_resp. At most
`inbound_concurrency` callbacks run at once; beyond that the session stops reading, which
also holds back submit_sm_resp on a transceiver, so callbacks must not wait on submits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable

from ...domain.encoding import decode
from ..base import MobileOriginated, MobileOriginatedSink, OutboundMessage, ReceiptSink, SubmitOutcome, Verdict
from .pdu import (
    DEFAULT_MAX_PDU_LENGTH,
    ESME_RINVBNDSTS,
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    ESME_RX_T_APPN,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    EnquireLink,
    GenericNack,
    Outbind,
    Pdu,
    PduError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_pdu,
    encode_pdu,
    read_frame,
    response_to,
    status_name,
)
from .receipt import Receipt, parse_receipt, printable
from .segments import CONCATENATION_MODES, concatenation_of, message_parts, reference_for, split_udh

__all__ = [
    "TEMPORARY_STATUSES",
    "BindRejected",
    "MobileOriginated",
    "OutboundMessage",
    "Receipt",
    "SmppConnector",
    "SubmitOutcome",
    "Verdict",
    "destination_address",
    "source_address",
]

# Statuses after which the same submit_sm may well succeed later. ESME_RINVBNDSTS means the
# SMSC lost our bind state; ESME_RX_T_APPN is the SMSC-side application's "try again".
TEMPORARY_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL, ESME_RSYSERR, ESME_RX_T_APPN, ESME_RINVBNDSTS})
_SLOW_DOWN_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})

SEQUENCE_MAX = 0x7FFFFFFF
# A number of at most this many digits is a short code (TON 3), longer ones are international.
SHORT_NUMBER_MAX_DIGITS = 8


class BindRejected(Exception):
    def __init__(self, status: int, link: str) -> None:
        hint = " (check system_id and password)" if status in (0x0D, 0x0E, 0x0F) else ""
        super().__init__(f"{link} rejected by the SMSC: {status_name(status)}{hint}")
        self.status = status


class SessionLost(ConnectionError):
    """The connection ended while a response was awaited."""


def source_address(source: str) -> tuple[int, int, str]:
    """(TON, NPI, address) for a sender id: alphanumeric (5/0) if it is not all digits,
    short code (3/0) up to SHORT_NUMBER_MAX_DIGITS digits, else international (1/1)."""
    value = source.strip()
    digits = value[1:] if value.startswith("+") else value
    if digits.isascii() and digits.isdigit():
        if len(digits) <= SHORT_NUMBER_MAX_DIGITS and not value.startswith("+"):
            return 3, 0, digits
        return 1, 1, digits
    return 5, 0, value


def destination_address(destination: str) -> tuple[int, int, str]:
    """(TON 1, NPI 1, digits): smsgw normalises numbers to international digits."""
    return 1, 1, destination.strip().lstrip("+")


class _Window:
    """At most `size` submit_sm awaiting their response."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self.peak = 0
        self._free = asyncio.Semaphore(size)

    async def acquire(self) -> None:
        await self._free.acquire()
        self.in_use += 1
        if self.in_use > self.peak:
            self.peak = self.in_use

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self.in_use -= 1
            self._free.release()


class _RateLimiter:
    """Token bucket without burst (submits are spaced 1/rate apart), shared by all callers.

    `slow_down` (on ESME_RTHROTTLED / ESME_RMSGQFUL) halves the current rate, at most once per
    `hold` seconds so that a window full of throttled answers counts as one signal. Without a
    configured limit it halves the rate at which submits were just going out (over the last
    second, or since the first of them if that is shorter: a burst after a quiet spell must
    not look like a trickle, or the limit would collapse). Each `hold` without throttling
    raises the rate by a quarter, up to the configured one; without a configured limit the
    limit is lifted once it is twice what the traffic actually uses.
    """

    MIN_RATE = 1.0
    # Shortest span a rate is measured over: a handful of back-to-back submits is not a
    # measurement of thousands per second.
    MIN_SPAN = 0.05

    def __init__(self, tps: float, hold: float = 1.0) -> None:
        self.configured = float(tps)
        self.rate = float(tps)  # 0: unlimited
        self.hold = hold
        self._next = 0.0
        self._last_slow_down = -math.inf
        self._last_change = -math.inf
        self._recent: collections.deque[float] = collections.deque()

    def sending_rate(self, now: float | None = None) -> float:
        """Submits per second over the last second (or since the first within it)."""
        now = time.monotonic() if now is None else now
        self._forget(now)
        if not self._recent:
            return 0.0
        return len(self._recent) / max(now - self._recent[0], self.MIN_SPAN)

    async def acquire(self) -> None:
        now = time.monotonic()
        self._forget(now)
        self._recent.append(now)
        if self.rate > 0 and (self.rate < self.configured or self.configured == 0):
            self._recover(now)
        if self.rate <= 0:
            return
        start = self._next if self._next > now else now
        self._next = start + 1.0 / self.rate
        if start > now:
            await asyncio.sleep(start - now)

    def slow_down(self) -> None:
        now = time.monotonic()
        if now - self._last_slow_down < self.hold:
            return
        self._last_slow_down = self._last_change = now
        base = self.rate if self.rate > 0 else self.sending_rate(now)
        self.rate = max(self.MIN_RATE, base / 2)

    def _recover(self, now: float) -> None:
        if now - self._last_change < self.hold:
            return
        self._last_change = now
        raised = self.rate * 1.25
        if self.configured > 0:
            self.rate = min(self.configured, raised)
        elif raised > 2 * max(self.sending_rate(now), self.MIN_RATE):
            self.rate = 0.0
        else:
            self.rate = raised

    def _forget(self, now: float) -> None:
        recent = self._recent
        horizon = now - 1.0
        while recent and recent[0] < horizon:
            recent.popleft()


class _Session:
    """One bound (or binding) TCP connection."""

    def __init__(self, connector: SmppConnector, link: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connector = connector
        self.link = link
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Pdu]] = {}
        self.orphans: set[int] = set()  # submit_sm sequence numbers given up on; each holds a window slot
        self.open = True
        self.close_reason = ""
        self._sequence = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._inbound_slots = asyncio.Semaphore(connector.inbound_concurrency)
        self._loop = asyncio.get_running_loop()
        self.log = connector.log

    def next_sequence(self) -> int:
        while True:
            self._sequence = self._sequence % SEQUENCE_MAX + 1
            if self._sequence not in self.pending and self._sequence not in self.orphans:
                return self._sequence

    def send(self, pdu: Pdu) -> None:
        if self.open:
            self.writer.write(encode_pdu(pdu))

    async def request(self, pdu: Pdu, timeout: float) -> Pdu:
        """Send `pdu` with a fresh sequence number and return its response.

        Raises PduError when `pdu` cannot be encoded, TimeoutError, SessionLost.
        """
        if not self.open:
            raise SessionLost(f"{self.link} is closed")
        pdu.sequence_number = self.next_sequence()
        data = encode_pdu(pdu)
        future: asyncio.Future[Pdu] = self._loop.create_future()
        self.pending[pdu.sequence_number] = future
        self.writer.write(data)
        timer = self._loop.call_later(timeout, _expire, future)
        try:
            if self.writer.transport.get_write_buffer_size() > 256 * 1024:
                await self.writer.drain()
            return await future
        except (TimeoutError, asyncio.CancelledError):
            self.pending.pop(pdu.sequence_number, None)
            raise
        except ConnectionError as exc:
            self.pending.pop(pdu.sequence_number, None)
            raise SessionLost(str(exc)) from None
        finally:
            timer.cancel()

    def orphan(self, sequence: int) -> None:
        """The submit_sm `sequence` was given up on; its window slot stays held until a late
        response or the end of the session."""
        if not self.open:
            # The session already released its orphans; this slot is free now.
            self.connector._window.release()
            return
        self.orphans.add(sequence)
        if len(self.orphans) >= max(1, self.connector.window // 2):
            self.close(f"{len(self.orphans)} submit_sm unanswered")

    def close(self, reason: str) -> None:
        if not self.open:
            return
        self.open = False
        self.close_reason = reason
        self.writer.close()

    async def run(self) -> None:
        """Read and dispatch PDUs until the connection ends."""
        stats = self.connector.stats
        try:
            while self.open:
                try:
                    frame = await read_frame(self.reader, self.connector.max_pdu_length)
                except PduError as exc:
                    stats["garbled_pdus"] += 1
                    self.log.error("%s: %s; closing (stream framing lost)", self.link, exc)
                    self._nack(exc)
                    self.close(str(exc))
                    break
                try:
                    pdu = decode_pdu(frame)
                except PduError as exc:
                    stats["garbled_pdus"] += 1
                    self._on_garbled(exc)
                    continue
                self._dispatch(pdu)
                if self._inbound_slots.locked():
                    # Back-pressure: stop reading while too many inbound PDUs are in hand.
                    await self._inbound_slots.acquire()
                    self._inbound_slots.release()
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            if self.open:
                # The link logs it once, with what it does next.
                self.close_reason = self.close_reason or f"connection lost: {exc or type(exc).__name__}"
        finally:
            self.open = False
            self.writer.close()
            lost = SessionLost(f"{self.link} connection closed: {self.close_reason or 'closed'}")
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(lost)
            self.pending.clear()
            if self.orphans:
                self.connector._window.release(len(self.orphans))
                self.orphans.clear()

    def _nack(self, exc: PduError) -> None:
        self.send(GenericNack(sequence_number=exc.sequence_number, command_status=exc.status))
        self.connector.stats["generic_nacks_sent"] += 1

    def _on_garbled(self, exc: PduError) -> None:
        command_id = exc.command_id or 0
        if command_id & 0x80000000 and command_id != 0x80000000:
            # A response we cannot read: fail its waiter (the outcome is unknown) rather
            # than answering a response with a generic_nack.
            self.log.warning("%s: unreadable response: %s", self.link, exc)
            future = self.pending.pop(exc.sequence_number, None)
            if future is not None and not future.done():
                future.set_exception(exc)
            elif exc.sequence_number in self.orphans:
                self.orphans.discard(exc.sequence_number)
                self.connector._window.release()
            return
        self.log.warning("%s: answering generic_nack: %s", self.link, exc)
        self._nack(exc)

    def _dispatch(self, pdu: Pdu) -> None:
        stats = self.connector.stats
        if pdu.command_id & 0x80000000:
            if isinstance(pdu, GenericNack):
                stats["generic_nacks"] += 1
            future = self.pending.pop(pdu.sequence_number, None)
            if future is not None:
                if not future.done():
                    future.set_result(pdu)
            elif pdu.sequence_number in self.orphans:
                self.orphans.discard(pdu.sequence_number)
                self.connector._window.release()
                stats["late_responses"] += 1
            else:
                stats["unexpected_responses"] += 1
                self.log.warning("%s: %s with sequence %d answers nothing we sent; dropped", self.link, pdu.name, pdu.sequence_number)
            return
        if isinstance(pdu, (DeliverSm, DataSm)):
            task = self._loop.create_task(self._inbound(pdu))
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

    async def _inbound(self, pdu: DeliverSm | DataSm) -> None:
        await self._inbound_slots.acquire()
        try:
            status, answered = await self.connector._handle_inbound(pdu, self.link)
        finally:
            self._inbound_slots.release()
        if self.open:
            self.send(response_to(pdu, status))
            if answered is not None:
                answered()


def _expire(future: asyncio.Future[Pdu]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _Link:
    """One supervised bind: connect, bind, run, and again after any loss."""

    def __init__(self, connector: SmppConnector, bind_class: type[BindTransmitter | BindReceiver | BindTransceiver]) -> None:
        self.connector = connector
        self.bind_class = bind_class
        self.name = f"{connector.name}/{bind_class.__name__.removeprefix('Bind').lower()}"
        self.session: _Session | None = None
        self.bound = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def supervise(self) -> None:
        connector = self.connector
        delay = connector.reconnect_min
        while not connector._stopping:
            session: _Session | None = None
            reader_task: asyncio.Task[None] | None = None
            try:
                session, reader_task = await self._connect_and_bind()
            except BindRejected as exc:
                connector.stats["bind_failures"] += 1
                connector.last_error = str(exc)
                connector.log.error("%s; retrying in %.1fs", exc, delay)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ConnectionError, PduError) as exc:
                connector.stats["connect_failures"] += 1
                connector.last_error = f"{self.name}: cannot bind to {connector.host}:{connector.port}: {exc or type(exc).__name__}"
                connector.log.warning("%s; retrying in %.1fs", connector.last_error, delay)
            else:
                delay = connector.reconnect_min
                connector.stats["binds"] += 1
                connector.last_error = None
                connector.log.info("%s bound to %s:%d", self.name, connector.host, connector.port)
                self.session = session
                self.bound.set()
                keepalive = asyncio.create_task(self._keepalive(session))
                try:
                    await reader_task
                finally:
                    self.bound.clear()
                    self.session = None
                    keepalive.cancel()
                if connector._stopping:
                    break
                connector.stats["reconnects"] += 1
                connector.last_error = f"{self.name}: {session.close_reason or 'connection closed'}"
                connector.log.warning("%s; reconnecting", connector.last_error)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, connector.reconnect_max)

    async def _connect_and_bind(self) -> tuple[_Session, asyncio.Task[None]]:
        connector = self.connector
        async with asyncio.timeout(connector.response_timeout):
            reader, writer = await asyncio.open_connection(connector.host, connector.port)
        session = _Session(connector, self.name, reader, writer)
        reader_task = asyncio.create_task(session.run())
        try:
            response = await session.request(connector._bind_pdu(self.bind_class), connector.response_timeout)
            if response.command_status != ESME_ROK:
                raise BindRejected(response.command_status, self.name)
            if isinstance(response, GenericNack):
                raise BindRejected(response.command_status or ESME_RSYSERR, self.name)
        except BaseException:
            session.close("bind failed")
            await asyncio.gather(reader_task, return_exceptions=True)
            raise
        return session, reader_task

    async def _keepalive(self, session: _Session) -> None:
        connector = self.connector
        while session.open:
            await asyncio.sleep(connector.enquire_link_interval)
            try:
                await session.request(EnquireLink(), connector.response_timeout)
                connector.stats["enquire_links"] += 1
            except TimeoutError:
                connector.stats["enquire_link_timeouts"] += 1
                session.close(f"no enquire_link_resp within {connector.response_timeout}s")
                return
            except SessionLost:
                return

    async def unbind(self, timeout: float) -> None:
        session = self.session
        if session is None or not session.open:
            return
        deadline = time.monotonic() + timeout
        # Let responses to submit_sm already on the wire come back before saying goodbye.
        while session.pending and time.monotonic() < deadline - timeout / 2:  # noqa: ASYNC110 - bounded, once per unbind
            await asyncio.sleep(0.01)
        with contextlib.suppress(TimeoutError, SessionLost, PduError):
            await session.request(Unbind(), max(0.05, deadline - time.monotonic()))
        session.close("unbound")


class SmppConnector:
    """An SMPP 3.4 ESME account at one SMSC (see the module docstring)."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        system_type: str = "",
        bind_mode: str = "transceiver",
        window: int = 64,
        tps: float = 0,
        enquire_link_interval: float = 30,
        response_timeout: float = 10,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30,
        concatenation: str = "udh",
        on_receipt: ReceiptSink | None = None,
        on_mobile_originated: MobileOriginatedSink | None = None,
        bind_wait: float = 30,
        max_throttle_retries: int = 6,
        throttle_hold: float = 1.0,
        inbound_concurrency: int = 64,
        max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
    ) -> None:
        if bind_mode not in ("transceiver", "transmitter_receiver"):
            raise ValueError(f"bind_mode must be 'transceiver' or 'transmitter_receiver', not {bind_mode!r}")
        if concatenation not in CONCATENATION_MODES:
            raise ValueError(f"concatenation must be one of {CONCATENATION_MODES}, not {concatenation!r}")
        if window < 1:
            raise ValueError("window must be at least 1")
        if tps < 0:
            raise ValueError("tps must be 0 (unlimited) or positive")
        self.name = name
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.system_type = system_type
        self.bind_mode = bind_mode
        self.window = window
        self.tps = tps
        self.enquire_link_interval = enquire_link_interval
        self.response_timeout = response_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_max, reconnect_min)
        self.concatenation = concatenation
        self.on_receipt = on_receipt
        self.on_mobile_originated = on_mobile_originated
        self.bind_wait = bind_wait
        self.max_throttle_retries = max_throttle_retries
        self.throttle_hold = throttle_hold
        self.inbound_concurrency = inbound_concurrency
        self.max_pdu_length = max_pdu_length
        self.log = logging.getLogger(f"smsgw.smpp.{name}")
        self.last_error: str | None = None
        self.stats: collections.Counter[str] = collections.Counter(
            dict.fromkeys(
                (
                    "submitted",
                    "responses",
                    "accepted",
                    "rejected",
                    "throttled",
                    "timeouts",
                    "lost_in_flight",
                    "receipts",
                    "unreadable_receipts",
                    "receipt_handler_errors",
                    "mobile_originated",
                    "generic_nacks",
                    "generic_nacks_sent",
                    "garbled_pdus",
                    "unexpected_responses",
                    "late_responses",
                    "binds",
                    "bind_failures",
                    "connect_failures",
                    "reconnects",
                    "enquire_links",
                    "enquire_link_timeouts",
                ),
                0,
            )
        )
        # Fail now, not in a reconnect loop, on credentials the bind PDU cannot carry.
        encode_pdu(self._bind_pdu(BindTransceiver))
        if bind_mode == "transceiver":
            self._links = [_Link(self, BindTransceiver)]
        else:
            self._links = [_Link(self, BindTransmitter), _Link(self, BindReceiver)]
        self._transmitter = self._links[0]
        self._window = _Window(window)
        self._rate = _RateLimiter(tps, throttle_hold)
        self._stopping = False
        self._stopped = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the supervisors (connect, bind, keep bound); returns at once."""
        self._stopping = False
        self._stopped.clear()
        for link in self._links:
            if link.task is None or link.task.done():
                link.task = asyncio.create_task(link.supervise(), name=link.name)

    async def wait_bound(self, timeout: float) -> bool:
        """True once every link is bound; False if that does not happen within `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(link.bound.wait() for link in self._links))
        except TimeoutError:
            return False
        return True

    @property
    def bound(self) -> bool:
        return all(link.bound.is_set() for link in self._links)

    async def stop(self, timeout: float = 2.0) -> None:
        """Unbind politely (waiting up to `timeout` for outstanding responses and the
        unbind_resp), close, cancel the supervisors."""
        self._stopping = True
        self._stopped.set()
        await asyncio.gather(*(link.unbind(timeout) for link in self._links), return_exceptions=True)
        for link in self._links:
            if link.task is not None:
                link.task.cancel()
        await asyncio.gather(*(link.task for link in self._links if link.task is not None), return_exceptions=True)
        for link in self._links:
            link.task = None

    # --- observability --------------------------------------------------------------------

    @property
    def window_in_use(self) -> int:
        return self._window.in_use

    @property
    def window_peak(self) -> int:
        return self._window.peak

    @property
    def current_tps(self) -> float:
        """Effective TPS limit now (0 = unlimited)."""
        return self._rate.rate

    # --- submitting -----------------------------------------------------------------------

    async def submit(self, message: OutboundMessage) -> SubmitOutcome:
        """Send every part of `message`; see SubmitOutcome. Parts go one after the other and
        the first failing part ends the attempt (a retry resends all parts, with the same
        concatenation reference)."""
        try:
            parts = message_parts(
                message.text,
                message.encoding,
                concatenation=self.concatenation,
                reference=reference_for(message.message_id, self.concatenation),
            )
        except PduError as exc:
            return SubmitOutcome.failed(str(exc), exc.status)
        source_ton, source_npi, source = source_address(message.source)
        dest_ton, dest_npi, destination = destination_address(message.destination)
        deadline = time.monotonic() + self.bind_wait
        ids: list[str] = []
        for number, part in enumerate(parts, 1):
            pdu = SubmitSm(
                source_addr_ton=source_ton,
                source_addr_npi=source_npi,
                source_addr=source,
                dest_addr_ton=dest_ton,
                dest_addr_npi=dest_npi,
                destination_addr=destination,
                esm_class=part.esm_class,
                registered_delivery=1,
                data_coding=part.data_coding,
                short_message=part.short_message,
                tlvs=dict(part.tlvs),
            )
            result = await self._submit_part(pdu, deadline, f"message {message.message_id} part {number}/{len(parts)}")
            if isinstance(result, SubmitOutcome):
                return result
            ids.append(result)
        return SubmitOutcome.accepted(ids, f"{len(ids)} part(s) accepted", ESME_ROK)

    async def _session_for_submit(self, deadline: float) -> _Session | None:
        link = self._transmitter
        while not self._stopping:
            session = link.session
            if session is not None and session.open and link.bound.is_set():
                return session
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            bound = asyncio.ensure_future(link.bound.wait())
            stopped = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait((bound, stopped), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                bound.cancel()
                stopped.cancel()
        return None

    async def _submit_part(self, pdu: SubmitSm, deadline: float, what: str) -> str | SubmitOutcome:
        stats = self.stats
        throttled = 0
        while True:
            session = await self._session_for_submit(deadline)
            if session is None:
                why = "the connector is stopping" if self._stopping else f"not bound within {self.bind_wait}s"
                return SubmitOutcome.retry(f"{what}: {why}" + (f" ({self.last_error})" if self.last_error else ""))
            await self._window.acquire()
            holds_slot = True
            on_the_wire = False
            try:
                await self._rate.acquire()
                if not session.open:
                    continue  # the bind went away while we queued: wait for the next one
                stats["submitted"] += 1
                on_the_wire = True
                try:
                    response = await session.request(pdu, self.response_timeout)
                except TimeoutError:
                    stats["timeouts"] += 1
                    holds_slot = False
                    session.orphan(pdu.sequence_number)
                    return SubmitOutcome.retry(f"{what}: no submit_sm_resp within {self.response_timeout}s", unanswered=True)
                except asyncio.CancelledError:
                    if on_the_wire and pdu.sequence_number:
                        holds_slot = False
                        session.orphan(pdu.sequence_number)
                    raise
                except SessionLost as exc:
                    stats["lost_in_flight"] += 1
                    return SubmitOutcome.retry(f"{what}: {exc}", unanswered=True)
                except PduError as exc:
                    if exc.command_id is None:  # our own PDU could not be encoded
                        return SubmitOutcome.failed(f"{what}: {exc}", exc.status)
                    return SubmitOutcome.retry(f"{what}: unreadable submit_sm_resp: {exc}", unanswered=True)
            finally:
                if holds_slot:
                    self._window.release()
            stats["responses"] += 1
            status = response.command_status
            if status == ESME_ROK and isinstance(response, SubmitSmResp):
                stats["accepted"] += 1
                message_id = printable(response.message_id)
                if not message_id:
                    self.log.warning("%s: submit_sm_resp without message_id; its receipt cannot be matched", what)
                return message_id
            if status == ESME_ROK:  # generic_nack with status 0: nonsense, but not success
                status = ESME_RSYSERR
            if status in _SLOW_DOWN_STATUSES:
                stats["throttled"] += 1
                self._rate.slow_down()
                throttled += 1
                if throttled > self.max_throttle_retries:
                    return SubmitOutcome.retry(f"{what}: {status_name(status)} after {throttled} attempts", status)
                await asyncio.sleep(min(2.0, 0.05 * 2 ** (throttled - 1)) * random.uniform(0.75, 1.25))
                continue
            stats["rejected"] += 1
            if status == ESME_RINVBNDSTS:
                session.close("the SMSC answered ESME_RINVBNDSTS")
            kind = "generic_nack" if isinstance(response, GenericNack) else "submit_sm_resp"
            verdict = Verdict.RETRY if status in TEMPORARY_STATUSES else Verdict.FAILED
            return SubmitOutcome(verdict, (), f"{what}: {kind} {status_name(status)}", status)

    # --- inbound --------------------------------------------------------------------------

    async def _handle_inbound(self, pdu: DeliverSm | DataSm, link: str) -> tuple[int, Callable[[], None] | None]:
        """Status for the deliver_sm_resp/data_sm_resp of an inbound message, and what to call
        once that answer went out."""
        answered: Callable[[], None] | None = None
        try:
            if pdu.is_receipt or pdu.receipted_message_id is not None:
                receipt = parse_receipt(pdu)
                if receipt is None:
                    # Redelivery would not make it readable: acknowledge and log it.
                    self.stats["unreadable_receipts"] += 1
                    self.log.warning("%s: receipt without message id: %r", link, pdu.content[:200])
                    return ESME_ROK, None
                self.stats["receipts"] += 1
                if self.on_receipt is not None:
                    await self.on_receipt(receipt)
            else:
                self.stats["mobile_originated"] += 1
                _, body = split_udh(pdu.content, pdu.esm_class)
                message = MobileOriginated(
                    source=pdu.source_addr,
                    destination=pdu.destination_addr,
                    text=decode(body, pdu.data_coding),
                    data_coding=pdu.data_coding,
                    esm_class=pdu.esm_class,
                    short_message=pdu.content,
                    user_data=body,
                    concatenation=concatenation_of(pdu) if isinstance(pdu, DeliverSm) else None,
                )
                if self.on_mobile_originated is not None:
                    answered = await self.on_mobile_originated(message)
                else:
                    self.log.info("%s: mobile-originated message to %s (%d characters)", link, message.destination, len(message.text))
        except Exception:
            self.stats["receipt_handler_errors"] += 1
            self.log.exception("%s: handling %s failed; asking the SMSC to redeliver", link, pdu.name)
            return ESME_RX_T_APPN, None
        return ESME_ROK, answered

    def _bind_pdu(self, bind_class: type[BindTransmitter | BindReceiver | BindTransceiver]) -> Pdu:
        return bind_class(system_id=self.system_id, password=self.password, system_type=self.system_type)
