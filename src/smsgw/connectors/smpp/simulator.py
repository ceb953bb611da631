"""An SMPP 3.4 SMSC simulator for tests, demos and benchmarks (asyncio, loopback by default).

It accepts bind_transmitter / bind_receiver / bind_transceiver (checking the credentials
when it was given a system_id and password: unknown system_id -> ESME_RBINDFAIL, wrong
password -> ESME_RINVPASWD), answers enquire_link and unbind, generic_nacks what it cannot
decode, and handles each submit_sm with a *behaviour*:

| behaviour (flag)  | class                  | what the ESME sees                                         |
|-------------------|------------------------|------------------------------------------------------------|
| happy             | Happy                  | submit_sm_resp with a fresh id, then a DELIVRD receipt      |
| delayed           | DelayedReceipt         | the same, the receipt `receipt_delay` (default 2 s) later   |
| undeliverable     | Undeliverable          | submit_sm_resp OK, then an UNDELIV receipt (err:001)        |
| expired           | Expired                | submit_sm_resp OK, then an EXPIRED receipt                  |
| rejected          | Rejected               | submit_sm_resp with `reject_status` (ESME_RINVDSTADR)       |
| throttle          | Throttling             | ESME_RTHROTTLED above `throttle_tps`, or every Nth submit   |
| queuefull         | QueueFull              | ESME_RMSGQFUL (every submit, or every Nth)                  |
| noresponse        | NoResponse             | nothing: the submit_sm is never answered                    |
| drop              | DropConnection         | after `drop_after` answered submits on a connection, stops  |
|                   |                        | answering and closes once `drop_hold` are unanswered        |
| early             | ReceiptBeforeResponse  | the DELIVRD receipt first, then the submit_sm_resp          |
| slow              | SlowResponse           | submit_sm_resp only after `response_delay` (default 1 s)    |
| blacklisted       | Blacklisted            | submit_sm_resp OK, then a BLACKLST receipt (the subscriber  |
|                   |                        | blocked the sender)                                         |

The behaviour for all traffic is a constructor flag (`behaviour=`): every number gets it,
whatever its digits, so a demo campaign to real-looking numbers never meets a fault by
accident. Only with `test_numbers=True` (`smsgw smsc-sim --test-numbers`) do the reserved
test numbers below pick their own behaviour (any other number gets the flagged one):

| destination ends in | behaviour                                                     |
|---------------------|---------------------------------------------------------------|
| 0001                | undeliverable (UNDELIV receipt)                               |
| 0002                | rejected (submit_sm_resp ESME_RINVDSTADR)                     |
| 0003                | delayed receipt (`receipt_delay`, default 2 s)                |
| 0004                | expired (EXPIRED receipt)                                     |
| 0005                | throttled, always (ESME_RTHROTTLED)                           |
| 0006                | queue full, always (ESME_RMSGQFUL)                            |
| 0007                | no response                                                   |
| 0008                | the connection is dropped on receipt of the submit_sm         |
| 0009                | receipt before response                                       |

Message ids are a counter written as upper-case hex, zero-padded to 8 digits
(`id_format="hex"`) or in decimal (`id_format="decimal"`). With `receipt_id_format="other"`
the receipts name the id in the other format (hex ids come back as 10-digit zero-padded
decimal, decimal ids as lower-case hex), which is what some carriers do. Each part of a
long message has its own id and its own receipt. Receipts carry the standard text and, unless
`receipt_tlvs=False`, the receipted_message_id and message_state TLVs.

Receipts go to the session that submitted if it can receive, else to any receiver bound
with the same system_id; when none is bound they wait for one. A receipt whose
deliver_sm_resp is not ESME_ROK, or whose connection ends before the answer, is delivered
again after `redelivery_delay` (at most `max_redeliveries` times).

`send_inbound` sends a subscriber's message to the bound gateway (deliver_sm, esm_class 0,
UDH or SAR parts in any order, over one bind or spread over several); `smsgw smsc-sim
--inbound-file` feeds it from a file.

Counters for tests: `submits`, `submits_by_destination`, `texts` (part text -> count),
`receipts_sent`, `receipts_acked`, `binds`, `bind_failures`, `max_outstanding` (most
unanswered submit_sm on one connection at any time), `responses_by_status`, and `received`,
the last `max_received` submit_sm as `SubmitRecord`s. Everything is bounded, so the
simulator can serve a long-running gateway and survive hostile ESMEs: per-destination and
per-text counts are exact up to `max_received` distinct keys; receipts waiting for a
receiver (none bound, or its `receipt_window` full of unanswered deliver_sm) are at most
`max_received` in all, for at most `max_system_ids` system_ids (the oldest are dropped and
counted in `receipts_abandoned`); a connection whose peer does not read its answers is not
read from while more than `max_write_buffer` bytes wait to be written to it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...domain.encoding import count_parts, decode
from ..base import Concatenation
from .pdu import (
    DEFAULT_MAX_PDU_LENGTH,
    ESM_CLASS_DELIVERY_RECEIPT,
    ESME_RALYBND,
    ESME_RBINDFAIL,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_RINVDSTADR,
    ESME_RINVPASWD,
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RTHROTTLED,
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
    decode_pdu,
    encode_pdu,
    read_frame,
    response_to,
)
from .receipt import STAT_MESSAGE_STATES, format_receipt_text
from .segments import concatenation_of, message_parts, split_udh

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
class _PendingReceipt:
    system_id: str
    pdu_fields: dict
    attempts: int = 0
    origin: _SmscSession | None = None


# --- behaviours -----------------------------------------------------------------------------


class SubmitContext:
    """What a behaviour may do with one submit_sm."""

    __slots__ = ("pdu", "record", "session", "sim")

    def __init__(self, sim: SmscSimulator, session: _SmscSession, pdu: SubmitSm, record: SubmitRecord) -> None:
        self.sim = sim
        self.session = session
        self.pdu = pdu
        self.record = record

    def accept(self) -> str:
        message_id = self.sim._new_message_id()
        self.record.message_id = message_id
        self.session.answer_submit(self.pdu, self.record, ESME_ROK, message_id)
        return message_id

    def reject(self, status: int) -> None:
        self.session.answer_submit(self.pdu, self.record, status, "")

    def receipt(self, stat: str, err: str = "000", delay: float | None = None) -> None:
        self.sim._schedule_receipt(self.session, self.pdu, self.record, stat, err, self.sim.receipt_delay if delay is None else delay)


class Behaviour:
    name = "behaviour"

    def handle(self, context: SubmitContext) -> None:
        raise NotImplementedError


class Happy(Behaviour):
    name = "happy"
    stat = "DELIVRD"
    err = "000"

    def handle(self, context: SubmitContext) -> None:
        context.accept()
        context.receipt(self.stat, self.err)


class Undeliverable(Happy):
    name = "undeliverable"
    stat = "UNDELIV"
    err = "001"


class Blacklisted(Happy):
    name = "blacklisted"
    stat = "BLACKLST"
    err = "000"


class Expired(Happy):
    name = "expired"
    stat = "EXPIRED"
    err = "027"


class DelayedReceipt(Happy):
    name = "delayed"

    def __init__(self, delay: float = 2.0) -> None:
        self.delay = delay

    def handle(self, context: SubmitContext) -> None:
        context.accept()
        context.receipt(self.stat, self.err, self.delay)


class SlowResponse(Happy):
    """Answers each submit_sm only after `delay` seconds (a congested or distant SMSC)."""

    name = "slow"

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay

    def handle(self, context: SubmitContext) -> None:
        context.session.call_later(self.delay, super().handle, context)


class Rejected(Behaviour):
    name = "rejected"

    def __init__(self, status: int = ESME_RINVDSTADR) -> None:
        self.status = status

    def handle(self, context: SubmitContext) -> None:
        context.reject(self.status)


class _Refusing(Behaviour):
    """Refuses with `status` above `tps` (token bucket, 100 ms of burst) or every `every`th
    submit; with neither, refuses every submit. Accepted submits take the happy path."""

    status = ESME_RTHROTTLED

    def __init__(self, tps: float = 0, every: int = 0) -> None:
        self.tps = tps
        self.every = every
        self._count = 0
        self._capacity = max(1.0, tps / 10)
        self._tokens = self._capacity
        self._last = time.monotonic()
        self._happy = Happy()

    def refuses(self) -> bool:
        if self.tps > 0:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.tps)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return False
            return True
        if self.every > 0:
            self._count += 1
            return self._count % self.every == 0
        return True

    def handle(self, context: SubmitContext) -> None:
        if self.refuses():
            context.sim.refused += 1
            context.reject(self.status)
        else:
            self._happy.handle(context)


class Throttling(_Refusing):
    name = "throttle"
    status = ESME_RTHROTTLED


class QueueFull(_Refusing):
    name = "queuefull"
    status = ESME_RMSGQFUL


class NoResponse(Behaviour):
    name = "noresponse"

    def handle(self, context: SubmitContext) -> None:
        pass  # never answered: stays outstanding until the connection ends


class DropConnection(Behaviour):
    """Answers `after` submits on each connection, then answers no more and closes the
    connection once `hold` submits are unanswered (or `hold_timeout` after the first of
    them), so that the ESME loses a full window. At most `max_drops` times (None: always)."""

    name = "drop"

    def __init__(self, after: int = 100, hold: int = 1, hold_timeout: float = 0.5, max_drops: int | None = None) -> None:
        self.after = after
        self.hold = max(1, hold)
        self.hold_timeout = hold_timeout
        self.max_drops = max_drops
        self.drops = 0
        self._happy = Happy()

    def handle(self, context: SubmitContext) -> None:
        session = context.session
        exhausted = self.max_drops is not None and self.drops >= self.max_drops
        answered = session.counters["drop_answered"]
        if exhausted or answered < self.after:
            session.counters["drop_answered"] += 1
            self._happy.handle(context)
            return
        session.counters["drop_held"] += 1
        if session.counters["drop_held"] == 1:
            session.call_later(self.hold_timeout, self._drop, session)
        if session.counters["drop_held"] >= self.hold:
            self._drop(session)

    def _drop(self, session: _SmscSession) -> None:
        if session.open:
            self.drops += 1
            session.sim.drops += 1
            session.abort(f"dropping the connection with {session.unanswered} submit_sm unanswered")


class DropNow(DropConnection):
    """Closes the connection as soon as this submit_sm arrives (test number ending 0008)."""

    name = "drop-now"

    def handle(self, context: SubmitContext) -> None:
        self._drop(context.session)


class ReceiptBeforeResponse(Behaviour):
    name = "early"

    def handle(self, context: SubmitContext) -> None:
        message_id = context.sim._new_message_id()
        context.record.message_id = message_id
        context.sim._schedule_receipt(context.session, context.pdu, context.record, "DELIVRD", "000", 0.0)
        context.session.answer_submit(context.pdu, context.record, ESME_ROK, message_id)


# The one registry of the behaviours a flag can name (`behaviour=`, `smsgw smsc-sim
# --behaviour`), each built with the simulator's options.
BEHAVIOURS: dict[str, Callable[[SmscSimulator], Behaviour]] = {
    "happy": lambda _sim: Happy(),
    "delayed": lambda sim: DelayedReceipt(sim.receipt_delay or 2.0),
    "undeliverable": lambda _sim: Undeliverable(),
    "expired": lambda _sim: Expired(),
    "rejected": lambda sim: Rejected(sim.reject_status),
    "throttle": lambda sim: Throttling(*sim.throttle_options),
    "queuefull": lambda sim: QueueFull(*sim.throttle_options),
    "noresponse": lambda _sim: NoResponse(),
    "drop": lambda sim: DropConnection(*sim.drop_options),
    "early": lambda _sim: ReceiptBeforeResponse(),
    "slow": lambda sim: SlowResponse(sim.response_delay),
    "blacklisted": lambda _sim: Blacklisted(),
}
BEHAVIOUR_NAMES = tuple(BEHAVIOURS)

# The reserved test numbers (only with `test_numbers=True`): some behaviours always, whatever
# the throttle and drop options.
TEST_NUMBER_SUFFIXES: dict[str, Callable[[SmscSimulator], Behaviour]] = {
    "0001": lambda _sim: Undeliverable(),
    "0002": lambda sim: Rejected(sim.reject_status),
    "0003": lambda sim: DelayedReceipt(sim.receipt_delay or 2.0),
    "0004": lambda _sim: Expired(),
    "0005": lambda _sim: Throttling(),
    "0006": lambda _sim: QueueFull(),
    "0007": lambda _sim: NoResponse(),
    "0008": lambda _sim: DropNow(),
    "0009": lambda _sim: ReceiptBeforeResponse(),
}


# --- sessions -------------------------------------------------------------------------------


class _SmscSession:
    def __init__(self, sim: SmscSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername")
        self.system_id = ""
        self.bound = False
        self.can_transmit = False
        self.can_receive = False
        self.open = True
        self.unanswered = 0
        self.counters: collections.Counter[str] = collections.Counter()
        self._sequence = 0
        self._receipts_in_flight: dict[int, _PendingReceipt] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._loop = asyncio.get_running_loop()

    def send(self, pdu: Pdu) -> None:
        if self.open:
            self.writer.write(encode_pdu(pdu))

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
            self.open = False
            self.writer.transport.abort()

    def close(self) -> None:
        if self.open:
            self.open = False
            self.writer.close()

    def next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

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

    def deliver(self, item: _PendingReceipt) -> None:
        """Sends the receipt; with a full window it waits among the parked ones instead."""
        if not self.receipt_room:
            self.sim._park(item)
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
            self.sim._redeliver(item)
        waiting = self.sim._unpark(self.system_id) if self.receipt_room else None
        if waiting is not None:
            self.deliver(waiting)

    async def run(self) -> None:
        sim = self.sim
        try:
            while self.open:
                try:
                    frame = await read_frame(self.reader, DEFAULT_MAX_PDU_LENGTH)
                except PduError as exc:
                    sim.garbled += 1
                    self.send(GenericNack(sequence_number=exc.sequence_number, command_status=exc.status))
                    self.close()
                    break
                try:
                    pdu = decode_pdu(frame)
                except PduError as exc:
                    sim.garbled += 1
                    if not (exc.command_id or 0) & 0x80000000:
                        self.send(GenericNack(sequence_number=exc.sequence_number, command_status=exc.status))
                    continue
                self._dispatch(pdu)
                # A client that does not read its answers stops being read, so that its
                # answers never pile up here.
                if self.writer.transport.get_write_buffer_size() > sim.max_write_buffer:
                    await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.open = False
            self.writer.close()
            for timer in self._timers:
                timer.cancel()
            sim._session_ended(self, list(self._receipts_in_flight.values()))
            self._receipts_in_flight.clear()

    def _dispatch(self, pdu: Pdu) -> None:
        sim = self.sim
        if isinstance(pdu, SubmitSm):
            if not self.bound or not self.can_transmit:
                self.send(response_to(pdu, ESME_RINVBNDSTS))
                return
            sim._on_submit(self, pdu)
        elif pdu.command_id & 0x80000000:
            if isinstance(pdu, GenericNack):
                sim.generic_nacks_received += 1
            self._receipt_answered(pdu)
        elif isinstance(pdu, EnquireLink):
            self.send(response_to(pdu))
        elif isinstance(pdu, (BindTransmitter, BindReceiver, BindTransceiver)):
            self._bind(pdu)
        elif isinstance(pdu, Unbind):
            self.send(response_to(pdu))
            sim.unbinds += 1
            self.close()
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
        status = sim._check_credentials(pdu.system_id, pdu.password)
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
            sim._receiver_bound(self)


# --- the simulator --------------------------------------------------------------------------


class SmscSimulator:
    """See the module docstring."""

    def __init__(
        self,
        *,
        system_id: str | None = None,
        password: str | None = None,
        behaviour: str | Behaviour = "happy",
        id_format: str = "hex",
        receipt_id_format: str = "same",
        receipt_delay: float = 0.0,
        response_delay: float = 1.0,
        receipt_tlvs: bool = True,
        test_numbers: bool = False,
        throttle_tps: float = 0,
        throttle_every: int = 0,
        drop_after: int = 100,
        drop_hold: int = 1,
        drop_hold_timeout: float = 0.5,
        max_drops: int | None = None,
        reject_status: int = ESME_RINVDSTADR,
        redelivery_delay: float = 0.5,
        max_redeliveries: int = 10,
        receipt_window: int = 256,
        max_received: int = 100_000,
        max_system_ids: int = 1000,
        max_write_buffer: int = 256 * 1024,
        first_message_id: int | None = None,
        name: str = "SMSGWSIM",
    ) -> None:
        if id_format not in ("hex", "decimal"):
            raise ValueError("id_format must be 'hex' or 'decimal'")
        if receipt_id_format not in ("same", "other"):
            raise ValueError("receipt_id_format must be 'same' or 'other'")
        self.system_id = system_id
        self.password = password
        self.id_format = id_format
        self.receipt_id_format = receipt_id_format
        self.receipt_delay: float = receipt_delay
        self.response_delay: float = response_delay
        self.receipt_tlvs = receipt_tlvs
        self.test_numbers = test_numbers
        self.reject_status: int = reject_status
        self.redelivery_delay = redelivery_delay
        self.max_redeliveries = max_redeliveries
        self.receipt_window = receipt_window
        self.max_system_ids = max_system_ids
        self.max_write_buffer = max_write_buffer
        self.name = name
        self.drop_options: tuple[int, int, float, int | None] = (drop_after, drop_hold, drop_hold_timeout, max_drops)
        self.throttle_options: tuple[float, int] = (throttle_tps, throttle_every)
        self.default_behaviour = behaviour if isinstance(behaviour, Behaviour) else self._behaviour_named(behaviour)
        self._test_behaviours = {suffix: factory(self) for suffix, factory in TEST_NUMBER_SUFFIXES.items()}
        self._next_id = first_message_id if first_message_id is not None else random.randrange(1 << 28, 1 << 31)
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[_SmscSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._receivers: dict[str, list[_SmscSession]] = collections.defaultdict(list)
        # Receipts waiting for a receiver (or for room in one), by system_id, least recently
        # used first; at most max_received in all and max_system_ids queues.
        self._parked: collections.OrderedDict[str, collections.deque[_PendingReceipt]] = collections.OrderedDict()
        self._parked_count = 0
        self._timers: set[asyncio.TimerHandle] = set()
        self._running = False
        self.max_received = max_received
        self.reset_counters()

    def _behaviour_named(self, name: str) -> Behaviour:
        if name not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {name!r}; one of {', '.join(BEHAVIOUR_NAMES)}")
        return BEHAVIOURS[name](self)

    def reset_counters(self) -> None:
        self.submits = 0
        self.submits_by_destination: collections.Counter[str] = collections.Counter()
        self.texts: collections.Counter[str] = collections.Counter()
        self.responses_by_status: collections.Counter[int] = collections.Counter()
        self.received: collections.deque[SubmitRecord] = collections.deque(maxlen=self.max_received)
        self.receipts_sent = 0
        self.receipts_acked = 0
        self.receipts_refused = 0
        self.receipts_abandoned = 0
        self.binds = 0
        self.bind_failures = 0
        self.bind_attempt_times: collections.deque[float] = collections.deque(maxlen=1000)
        self.unbinds = 0
        self.connections = 0
        self.max_outstanding = 0
        self.max_concurrent_binds = 0  # most sessions bound at the same time
        self.refused = 0
        self.drops = 0
        self.garbled = 0
        self.generic_nacks_received = 0

    @property
    def bound_sessions(self) -> int:
        """Sessions bound right now (what a carrier counts against an account's bind limit)."""
        return sum(1 for session in self._sessions if session.bound and session.open)

    @property
    def distinct_texts(self) -> int:
        return len(self.texts)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the simulator is not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0: any free port); returns the port."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=1 << 20)
        self._running = True
        return self.port

    async def stop(self) -> None:
        self._running = False
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.abort("simulator stopping")
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _SmscSession(self, reader, writer)
        self._sessions.add(session)
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._tasks.discard(task)

    # --- binds and credentials ---------------------------------------------------------------

    def _check_credentials(self, system_id: str, password: str) -> int:
        self.bind_attempt_times.append(time.monotonic())
        if self.system_id is not None and system_id != self.system_id:
            return ESME_RBINDFAIL
        if self.password is not None and password != self.password:
            return ESME_RINVPASWD
        return ESME_ROK

    def _receiver_bound(self, session: _SmscSession) -> None:
        self._receivers[session.system_id].append(session)
        while session.receipt_room:
            waiting = self._unpark(session.system_id)
            if waiting is None:
                break
            session.deliver(waiting)

    def _session_ended(self, session: _SmscSession, undelivered: list[_PendingReceipt]) -> None:
        receivers = self._receivers.get(session.system_id)
        if receivers and session in receivers:
            receivers.remove(session)
            if not receivers:
                del self._receivers[session.system_id]
        for item in undelivered:
            self._redeliver(item)

    # --- submits -----------------------------------------------------------------------------

    def behaviour_for(self, destination: str) -> Behaviour:
        if self.test_numbers:
            reserved = self._test_behaviours.get(destination[-4:])
            if reserved is not None:
                return reserved
        return self.default_behaviour

    def _on_submit(self, session: _SmscSession, pdu: SubmitSm) -> None:
        _header, body = split_udh(pdu.content, pdu.esm_class)
        record = SubmitRecord(
            system_id=session.system_id,
            sequence_number=pdu.sequence_number,
            source=pdu.source_addr,
            destination=pdu.destination_addr,
            text=decode(body, pdu.data_coding),
            data_coding=pdu.data_coding,
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            concatenation=concatenation_of(pdu),
            received_at=time.time(),
        )
        self.submits += 1
        # Exact up to max_received distinct keys; past that, new keys are not tracked, so
        # that a simulator serving a long-running gateway does not grow without bound.
        if record.destination in self.submits_by_destination or len(self.submits_by_destination) < self.max_received:
            self.submits_by_destination[record.destination] += 1
        if record.text in self.texts or len(self.texts) < self.max_received:
            self.texts[record.text] += 1
        self.received.append(record)
        session.unanswered += 1
        if session.unanswered > self.max_outstanding:
            self.max_outstanding = session.unanswered
        self.behaviour_for(record.destination).handle(SubmitContext(self, session, pdu, record))

    def _new_message_id(self) -> str:
        number = self._next_id
        self._next_id += 1
        return f"{number:08X}" if self.id_format == "hex" else str(number)

    def _receipt_id(self, message_id: str) -> str:
        if self.receipt_id_format == "same":
            return message_id
        if self.id_format == "hex":
            return f"{int(message_id, 16):010d}"
        return f"{int(message_id):x}"

    # --- receipts ----------------------------------------------------------------------------

    def _schedule_receipt(self, session: _SmscSession, pdu: SubmitSm, record: SubmitRecord, stat: str, err: str, delay: float) -> None:
        wanted = pdu.registered_delivery & 0x03
        if wanted == 0 or (wanted == 2 and stat in ("DELIVRD", "ACCEPTD")):
            return
        receipt_id = self._receipt_id(record.message_id)
        text = format_receipt_text(
            receipt_id,
            stat,
            submitted_at=record.received_at,
            done_at=time.time() + delay,
            err=err,
            text="".join(ch if " " <= ch < "\x7f" else "?" for ch in record.text[:20]),
        )
        tlvs: dict[int, bytes] = {}
        fields = {
            "source_addr_ton": pdu.dest_addr_ton,
            "source_addr_npi": pdu.dest_addr_npi,
            "source_addr": pdu.destination_addr,
            "dest_addr_ton": pdu.source_addr_ton,
            "dest_addr_npi": pdu.source_addr_npi,
            "destination_addr": pdu.source_addr,
            "esm_class": ESM_CLASS_DELIVERY_RECEIPT,
            "data_coding": 0,
            "short_message": text.encode("ascii"),
            "tlvs": tlvs,
        }
        if self.receipt_tlvs:
            template = DeliverSm(tlvs=tlvs)
            template.receipted_message_id = receipt_id
            template.message_state = STAT_MESSAGE_STATES.get(stat, 7)
        item = _PendingReceipt(session.system_id, fields, origin=session)
        if delay > 0:
            self._later(delay, self._dispatch_receipt, item)
        else:
            self._dispatch_receipt(item)

    def _later(self, delay: float, callback: Callable[..., None], *args: object) -> None:
        if not self._running:
            return
        handle: asyncio.TimerHandle

        def run() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(handle)

    def _dispatch_receipt(self, item: _PendingReceipt) -> None:
        origin = item.origin
        item.origin = None
        if origin is not None and origin.open and origin.can_receive:
            origin.deliver(item)
            return
        receivers = [s for s in self._receivers.get(item.system_id, ()) if s.receipt_room]
        if receivers:
            random.choice(receivers).deliver(item)
            return
        self._park(item)

    def _park(self, item: _PendingReceipt) -> None:
        """Keeps the receipt until a receiver of its system_id has room, dropping the oldest
        (of the system_id least recently parked for) past the caps."""
        queue = self._parked.get(item.system_id)
        if queue is None:
            if len(self._parked) >= self.max_system_ids:
                _, evicted = self._parked.popitem(last=False)
                self._parked_count -= len(evicted)
                self.receipts_abandoned += len(evicted)
            queue = self._parked[item.system_id] = collections.deque()
        else:
            self._parked.move_to_end(item.system_id)
        queue.append(item)
        self._parked_count += 1
        while self._parked_count > self.max_received:
            oldest_id, oldest = next(iter(self._parked.items()))
            oldest.popleft()
            self._parked_count -= 1
            self.receipts_abandoned += 1
            if not oldest:
                del self._parked[oldest_id]

    def _unpark(self, system_id: str) -> _PendingReceipt | None:
        queue = self._parked.get(system_id)
        if not queue:
            return None
        item = queue.popleft()
        self._parked_count -= 1
        if not queue:
            del self._parked[system_id]
        return item

    def _redeliver(self, item: _PendingReceipt) -> None:
        if item.attempts > self.max_redeliveries:
            self.receipts_abandoned += 1
            return
        if not self._running:
            return
        self._later(self.redelivery_delay, self._dispatch_receipt, item)

    def send_inbound(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        concatenation: str = "udh",
        reference: int = 0,
        order: list[int] | None = None,
        spread: bool = False,
    ) -> int:
        """A subscriber's message to the gateway: deliver_sm (esm_class 0, UDHI for UDH parts),
        as many parts as its text needs, sent in `order` (0-based part indexes) and, with
        `spread`, each to another bound receiver. They wait for a receiver like receipts and
        are redelivered like them (and counted with them). Returns how many parts went."""
        encoding, _ = count_parts(text)
        parts = message_parts(text, encoding, concatenation=concatenation, reference=reference)
        for position, index in enumerate(order if order is not None else range(len(parts))):
            part = parts[index]
            fields = {
                "source_addr_ton": 1,
                "source_addr_npi": 1,
                "source_addr": source,
                "dest_addr_ton": 0,
                "dest_addr_npi": 0,
                "destination_addr": destination,
                "esm_class": part.esm_class,
                "data_coding": part.data_coding,
                "short_message": part.short_message,
                "tlvs": dict(part.tlvs),
            }
            self._dispatch_inbound(fields, position if spread else 0)
        return len(parts)

    def _dispatch_inbound(self, fields: dict, spread_index: int) -> None:
        receivers = [session for sessions in self._receivers.values() for session in sessions if session.open]
        if not receivers:  # whichever ESME binds first as a receiver gets it
            self._later(0.1, self._dispatch_inbound, fields, spread_index)
            return
        origin = receivers[spread_index % len(receivers)]
        self._dispatch_receipt(_PendingReceipt(origin.system_id, fields, origin=origin))

    @property
    def parked_receipts(self) -> int:
        return self._parked_count

    @property
    def tracked_system_ids(self) -> int:
        """System ids the simulator keeps anything for (parked receipts, bound receivers)."""
        return len(self._parked.keys() | self._receivers.keys())
