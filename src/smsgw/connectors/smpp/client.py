"""The ESME side: one `SmppConnector` per carrier account, used by the dispatcher.

Shape of a connector, one module each:

- one supervised link (`link.Link`, bind_transceiver), or two (bind_transmitter +
  bind_receiver) in "transmitter_receiver" mode; each link reconnects on any loss with
  exponential backoff and jitter, reset after a successful bind, and keeps its connection
  alive with enquire_link, whose missing answer tears the connection down;
- a session per TCP connection (`client_session.ClientSession`, on the session core
  `channel.PduChannel` shared with the partner SMPP server and the simulator): sequence
  number -> waiter of its response, a reader task that dispatches every PDU;
- a per-connector window (`window.Window`: one slot per unanswered submit_sm) and a token
  bucket for TPS (`rate.RateLimiter`) that halves itself while the SMSC throttles and
  recovers gradually afterwards.

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
import logging
import random
import time
from collections.abc import Callable

from ...domain.encoding import decode
from ..base import MobileOriginated, MobileOriginatedSink, OutboundMessage, ReceiptSink, SubmitOutcome, Verdict
from .channel import ChannelClosed
from .client_session import ClientSession
from .link import BindRejected, Link
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
    GenericNack,
    Pdu,
    PduError,
    SubmitSm,
    SubmitSmResp,
    encode_pdu,
    status_name,
)
from .rate import RateLimiter
from .receipt import Receipt, parse_receipt, printable
from .segments import CONCATENATION_MODES, concatenation_of, message_parts, reference_for, split_udh
from .window import Window

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

# A number of at most this many digits is a short code (TON 3), longer ones are international.
SHORT_NUMBER_MAX_DIGITS = 8


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
        encode_pdu(self.bind_pdu(BindTransceiver))
        if bind_mode == "transceiver":
            self._links = [Link(self, BindTransceiver)]
        else:
            self._links = [Link(self, BindTransmitter), Link(self, BindReceiver)]
        self._transmitter = self._links[0]
        self.submit_window = Window(window)
        self.rate_limiter = RateLimiter(tps, throttle_hold)
        self.stopping = False
        self._stopped = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the supervisors (connect, bind, keep bound); returns at once."""
        self.stopping = False
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
        self.stopping = True
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
        return self.submit_window.in_use

    @property
    def window_peak(self) -> int:
        return self.submit_window.peak

    @property
    def current_tps(self) -> float:
        """Effective TPS limit now (0 = unlimited)."""
        return self.rate_limiter.rate

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

    async def _session_for_submit(self, deadline: float) -> ClientSession | None:
        link = self._transmitter
        while not self.stopping:
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
                why = "the connector is stopping" if self.stopping else f"not bound within {self.bind_wait}s"
                return SubmitOutcome.retry(f"{what}: {why}" + (f" ({self.last_error})" if self.last_error else ""))
            await self.submit_window.acquire()
            holds_slot = True
            on_the_wire = False
            try:
                await self.rate_limiter.acquire()
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
                except ChannelClosed as exc:
                    stats["lost_in_flight"] += 1
                    return SubmitOutcome.retry(f"{what}: {exc}", unanswered=True)
                except PduError as exc:
                    if exc.command_id is None:  # our own PDU could not be encoded
                        return SubmitOutcome.failed(f"{what}: {exc}", exc.status)
                    return SubmitOutcome.retry(f"{what}: unreadable submit_sm_resp: {exc}", unanswered=True)
            finally:
                if holds_slot:
                    self.submit_window.release()
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
                self.rate_limiter.slow_down()
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

    async def handle_inbound(self, pdu: DeliverSm | DataSm, link: str) -> tuple[int, Callable[[], None] | None]:
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

    def bind_pdu(self, bind_class: type[BindTransmitter | BindReceiver | BindTransceiver]) -> Pdu:
        return bind_class(system_id=self.system_id, password=self.password, system_type=self.system_type)
