"""The SMSC simulator itself: listening, credentials, message ids, receipts waiting for a
receiver and their redelivery, inbound messages, the counters tests read."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable

from ....domain.encoding import count_parts, decode
from ..pdu import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ESME_RBINDFAIL,
    ESME_RINVDSTADR,
    ESME_RINVPASWD,
    ESME_ROK,
    DeliverSm,
    SubmitSm,
)
from ..receipt import STAT_MESSAGE_STATES, format_receipt_text
from ..segments import concatenation_of, message_parts, split_udh
from .behaviours import BEHAVIOUR_NAMES, BEHAVIOURS, TEST_NUMBER_SUFFIXES, Behaviour, SubmitContext
from .session import PendingReceipt, SmscSession, SubmitRecord

log = logging.getLogger("smsgw.smsc_sim")


class SmscSimulator:
    """See the package docstring."""

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
        self._sessions: set[SmscSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._receivers: dict[str, list[SmscSession]] = collections.defaultdict(list)
        # Receipts waiting for a receiver (or for room in one), by system_id, least recently
        # used first; at most max_received in all and max_system_ids queues.
        self._parked: collections.OrderedDict[str, collections.deque[PendingReceipt]] = collections.OrderedDict()
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
        session = SmscSession(self, reader, writer)
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

    def check_credentials(self, system_id: str, password: str) -> int:
        self.bind_attempt_times.append(time.monotonic())
        if self.system_id is not None and system_id != self.system_id:
            return ESME_RBINDFAIL
        if self.password is not None and password != self.password:
            return ESME_RINVPASWD
        return ESME_ROK

    def receiver_bound(self, session: SmscSession) -> None:
        self._receivers[session.system_id].append(session)
        while session.receipt_room:
            waiting = self.unpark(session.system_id)
            if waiting is None:
                break
            session.deliver(waiting)

    def session_ended(self, session: SmscSession, undelivered: list[PendingReceipt]) -> None:
        receivers = self._receivers.get(session.system_id)
        if receivers and session in receivers:
            receivers.remove(session)
            if not receivers:
                del self._receivers[session.system_id]
        for item in undelivered:
            self.redeliver(item)

    # --- submits -----------------------------------------------------------------------------

    def behaviour_for(self, destination: str) -> Behaviour:
        if self.test_numbers:
            reserved = self._test_behaviours.get(destination[-4:])
            if reserved is not None:
                return reserved
        return self.default_behaviour

    def on_submit(self, session: SmscSession, pdu: SubmitSm) -> None:
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

    def new_message_id(self) -> str:
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

    def schedule_receipt(self, session: SmscSession, pdu: SubmitSm, record: SubmitRecord, stat: str, err: str, delay: float) -> None:
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
        item = PendingReceipt(session.system_id, fields, origin=session)
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

    def _dispatch_receipt(self, item: PendingReceipt) -> None:
        origin = item.origin
        item.origin = None
        if origin is not None and origin.open and origin.can_receive:
            origin.deliver(item)
            return
        receivers = [s for s in self._receivers.get(item.system_id, ()) if s.receipt_room]
        if receivers:
            random.choice(receivers).deliver(item)
            return
        self.park(item)

    def park(self, item: PendingReceipt) -> None:
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

    def unpark(self, system_id: str) -> PendingReceipt | None:
        queue = self._parked.get(system_id)
        if not queue:
            return None
        item = queue.popleft()
        self._parked_count -= 1
        if not queue:
            del self._parked[system_id]
        return item

    def redeliver(self, item: PendingReceipt) -> None:
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
        self._dispatch_receipt(PendingReceipt(origin.system_id, fields, origin=origin))

    @property
    def parked_receipts(self) -> int:
        return self._parked_count

    @property
    def tracked_system_ids(self) -> int:
        """System ids the simulator keeps anything for (parked receipts, bound receivers)."""
        return len(self._parked.keys() | self._receivers.keys())
