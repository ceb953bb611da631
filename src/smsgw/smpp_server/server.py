"""The partner SMPP server: the listener, the accounts' binds in this process, and the
receipts owed to them.

Binds check the account's password like the HTTP API checks keys (HMAC under the server
secret, constant time; an unknown system_id costs the same work as a wrong password), and
wrong passwords are counted per source address and per system_id: past the limit the
connection is closed after the refusal. An account holds at most `max_binds` binds in this
process. Every submit_sm goes through the acceptance service that the HTTP API uses, with
the account's name, so the accepting transaction also records the receipt owed
(`smpp_receipts`).

Receipts: while an account has a receiver-capable bind here, the receipts of its messages
that reached a final state are read from the store and sent as deliver_sm. Inbound messages
of a partner that takes them over SMPP go the same way to a receiver of any of its accounts
(esm_class 0, from the subscriber's number to the shortcode; a long one in UDH parts, all
of which must be taken). At most `DELIVER_WINDOW` of both are unanswered per bind; one
counts as delivered on deliver_sm_resp ESME_ROK and is otherwise sent again later. With no
receiver bound they stay in the store.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from .. import metrics
from ..api.controls import ensure_allowed_address
from ..api.guard import FailureThrottle
from ..config import Settings
from ..connectors.smpp.pdu import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ESME_RBINDFAIL,
    ESME_RINVPASWD,
    ESME_ROK,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    PduError,
)
from ..connectors.smpp.receipt import STAT_MESSAGE_STATES, format_receipt_text
from ..connectors.smpp.segments import message_parts, reference_for
from ..domain.apikeys import KeyHasher
from ..domain.codes import Code
from ..domain.encoding import count_parts
from ..domain.identifiers import parse_ip_address
from ..domain.states import PRIORITY_BULK, DeliveryState
from ..service.acceptance import Acceptance
from ..service.errors import BadRequest, RateLimited
from ..store import smpp_accounts
from ..store.errors import StoreUnavailable
from ..store.smpp_accounts import OwedInbound, OwedReceipt, SmppAccount
from ..store.store import Partner
from .assembly import Whole
from .session import PartnerSession
from .statuses import status_of

log = logging.getLogger("smsgw.smpp_server")

SYSTEM_ID = "smsgw"
# deliver_sm (receipts and inbound messages) one bind may have unanswered.
DELIVER_WINDOW = 10
DELIVER_RESPONSE_SECONDS = 10.0
# A deliver_sm the ESME did not take is sent again after this (times its attempts, at most the max).
DELIVER_RETRY_SECONDS = 5.0
DELIVER_RETRY_MAX_SECONDS = 300.0
# How often the store is asked for receipts and inbound messages owed while a receiver is bound.
DELIVER_POLL_SECONDS = 0.25
# Whole messages of one account and shortcode decided by one call of the acceptance service.
# One call at a time per account and shortcode: two at once measured slower (their commits
# queue behind each other in the store's writer, and the groups get smaller).
ACCEPT_GROUP_MAX = 500
# How many times a cut-off commit's message is looked up (over about 5 s) before the answer.
UNKNOWN_OUTCOME_CHECKS = 6

_BIND_TYPES = {BindTransmitter: "transmitter", BindReceiver: "receiver", BindTransceiver: "transceiver"}

# A message's final state -> the receipt's stat and err.
_RECEIPT_STAT = {
    DeliveryState.DELIVERED: ("DELIVRD", "000"),
    DeliveryState.ABSENT_SUBSCRIBER: ("EXPIRED", "001"),
    DeliveryState.DELIVERY_IMPOSSIBLE: ("UNDELIV", "002"),
    DeliveryState.SENDER_BLACKLISTED: ("REJECTD", "003"),
    DeliveryState.UNKNOWN: ("UNKNOWN", "004"),
    DeliveryState.NO_RECEIPT: ("UNKNOWN", "005"),
    DeliveryState.CANCELLED: ("DELETED", "006"),
}


class _TokenBucket:
    """The account's submit_sm per second in this process, with a one-second burst."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.rate), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def receipt_pdu(owed: OwedReceipt) -> DeliverSm:
    """The deliver_sm receipt of a final message (SMPP 3.4 appendix B text and TLVs)."""
    stat, err = _RECEIPT_STAT.get(DeliveryState(owed.state), ("UNKNOWN", "999"))
    text = format_receipt_text(
        str(owed.message_id),
        stat,
        submitted_at=owed.created_at / 1000,
        done_at=(owed.done_at or owed.created_at) / 1000,
        err=err,
        text=owed.text.encode("ascii", "replace").decode("ascii"),
    )
    return DeliverSm(
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=owed.msisdn,
        destination_addr=owed.shortcode,
        esm_class=ESM_CLASS_DELIVERY_RECEIPT,
        short_message=text.encode("ascii", "replace")[:254],
        tlvs={TLV_RECEIPTED_MESSAGE_ID: str(owed.message_id).encode("ascii") + b"\0", TLV_MESSAGE_STATE: bytes((STAT_MESSAGE_STATES[stat],))},
    )


def inbound_pdus(message: OwedInbound) -> list[DeliverSm]:
    """The deliver_sm a subscriber's message goes to the partner's ESME as: GSM-7 when every
    character has a septet, else UCS-2; a long one in UDH-concatenated parts (esm_class UDHI)."""
    encoding, _ = count_parts(message.text)
    parts = message_parts(message.text, encoding, reference=reference_for(message.inbound_id))
    return [
        DeliverSm(
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=message.msisdn,
            destination_addr=message.shortcode,
            esm_class=part.esm_class,
            data_coding=part.data_coding,
            short_message=part.short_message,
            tlvs=dict(part.tlvs),
        )
        for part in parts
    ]


class PartnerSmppServer:
    def __init__(self, settings: Settings, acceptance: Acceptance) -> None:
        self.settings = settings
        self.acceptance = acceptance
        self.store = acceptance.store
        self.system_id = SYSTEM_ID
        self.throttle = FailureThrottle()
        self.stats: collections.Counter[str] = collections.Counter()
        self.binds: dict[str, set[PartnerSession]] = {}
        self._buckets: dict[str, _TokenBucket] = {}
        self._undecided: dict[tuple[str, str], list[tuple[Whole, asyncio.Future[tuple[int, str]]]]] = {}
        self._deciding: set[tuple[str, str]] = set()
        self._sessions: set[PartnerSession] = set()
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._hasher: KeyHasher | None = None
        self._absent_hash = ""
        self._server: asyncio.Server | None = None
        self._deliveries_task: asyncio.Task[None] | None = None
        self._deliveries_wanted = asyncio.Event()
        self._receipts_in_flight: dict[str, set[int]] = collections.defaultdict(set)
        self._inbound_in_flight: dict[str, set[int]] = collections.defaultdict(set)
        self._delivered: list[int] = []
        self._inbound_delivered: list[int] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        context = self._tls_context()
        self._server = await asyncio.start_server(self._accept_connection, host, port, ssl=context, reuse_port=reuse_port or None)
        self._deliveries_task = asyncio.create_task(self._deliver_owed())
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.close("server stopping")
        if self._session_tasks:
            await asyncio.wait(set(self._session_tasks), timeout=5)
        if self._deliveries_task is not None:
            self._deliveries_task.cancel()
            await asyncio.gather(self._deliveries_task, return_exceptions=True)
        await self._flush_delivered()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.settings.smpp_tls_cert_file is None or self.settings.smpp_tls_key_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.settings.smpp_tls_cert_file, self.settings.smpp_tls_key_file)
        return context

    async def _accept_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = PartnerSession(self, reader, writer)
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._session_tasks.add(task)
        try:
            await session.run()
        except Exception:
            self.stats["session_errors"] += 1
            log.exception("%s: session failed", session.name)
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._session_tasks.discard(task)

    # -- binds -------------------------------------------------------------------------------

    async def bind(self, session: PartnerSession, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> tuple[int, bool]:
        """(command_status, close the connection) for a bind; on ESME_ROK the session is
        the account's. An address past the failure limit is not heard at all, right password
        or not: SMPP passwords are short enough to guess, and reconnecting is free."""
        if self.throttle.address_waiting(session.address):
            self.stats["bind_failures"] += 1
            return ESME_RBINDFAIL, True
        try:
            hasher = self._hasher or await self._load_hasher()
            account = await self.store.read(smpp_accounts.get_account, pdu.system_id)
            partner = await self.store.get_partner(account.partner_id) if account is not None else None
        except StoreUnavailable:
            return ESME_RSYSERR, False
        if account is None:
            hasher.verify(pdu.password, self._absent_hash)  # the work of a wrong password
            return self._wrong_password(pdu.system_id, session.address)
        if not hasher.verify(pdu.password, account.password_hash):
            return self._wrong_password(pdu.system_id, session.address)
        if partner is None or not partner.active:
            return ESME_RBINDFAIL, True
        try:
            ensure_allowed_address(partner, parse_ip_address(session.address))
        except BadRequest:
            return ESME_RBINDFAIL, True
        bound = self.binds.setdefault(account.system_id, set())
        if len(bound) >= account.max_binds:
            log.info("%s: bind refused, %s holds its %d binds", session.address, account.system_id, account.max_binds)
            return ESME_RBINDFAIL, False
        bound.add(session)
        session.account = account
        session.partner = partner
        session.bind_type = _BIND_TYPES[type(pdu)]
        metrics.smpp_bind_changed(account.system_id, session.bind_type, 1)
        self.stats["binds"] += 1
        log.info("%s: bound as %s (%s)", session.address, account.system_id, type(pdu).__name__)
        return ESME_ROK, False

    def _wrong_password(self, system_id: str, address: str) -> tuple[int, bool]:
        self.stats["bind_failures"] += 1
        refusal = self.throttle.refuse(system_id, address)
        return ESME_RINVPASWD, refusal.http_status == 429

    async def _load_hasher(self) -> KeyHasher:
        self._hasher = await self.store.api_key_hasher(self.settings.api_key_secret)
        self._absent_hash = self._hasher.hash(secrets.token_hex(16))
        return self._hasher

    def detach(self, session: PartnerSession) -> None:
        if session.account is not None:
            bound = self.binds.get(session.account.system_id)
            if bound is not None and session in bound:
                bound.discard(session)
                metrics.smpp_bind_changed(session.account.system_id, session.bind_type, -1)
                if not bound:
                    del self.binds[session.account.system_id]

    def take_rate(self, account: SmppAccount) -> bool:
        if account.tps is None:
            return True
        bucket = self._buckets.get(account.system_id)
        if bucket is None or bucket.rate != account.tps:
            bucket = self._buckets[account.system_id] = _TokenBucket(account.tps)
        return bucket.take()

    # -- submit_sm ---------------------------------------------------------------------------

    async def accept(self, partner: Partner, account: SmppAccount, whole: Whole) -> tuple[int, str]:
        """(command_status, message id) for a whole message, decided, charged and stored by
        the acceptance service before this returns. Messages of one account and shortcode that
        come while an earlier group of them is being decided wait and are decided together:
        one call of the acceptance service pays its lookups and its commit once for all."""
        key = (account.system_id, whole.source)
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._undecided.setdefault(key, []).append((whole, future))
        if key not in self._deciding:
            self._deciding.add(key)
            self._spawn(self._decide_waiting(key, partner, account))
        return await future

    async def _decide_waiting(self, key: tuple[str, str], partner: Partner, account: SmppAccount) -> None:
        waiting = self._undecided[key]
        try:
            while waiting:
                group = waiting[:ACCEPT_GROUP_MAX]
                del waiting[:ACCEPT_GROUP_MAX]
                try:
                    answers = await self._decide(partner, account, [whole for whole, _ in group])
                except Exception:
                    log.exception("%s: %d submit_sm could not be decided", account.system_id, len(group))
                    answers = [(ESME_RSYSERR, "")] * len(group)
                for (_, future), answer in zip(group, answers):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._deciding.discard(key)
            for _, future in waiting:  # only when cancelled (the server stopping)
                if not future.done():
                    future.set_result((ESME_RSYSERR, ""))
            del self._undecided[key]

    async def _decide(self, partner: Partner, account: SmppAccount, wholes: list[Whole]) -> list[tuple[int, str]]:
        """One answer per message, in order. A group refused as a whole for what its messages
        would each pass alone (the credit or the partner's rate covers only some) is decided
        again one message at a time, as if they had come apart."""
        try:
            answer = await self.acceptance.submit(
                partner,
                wholes[0].source,
                [{"mobile": whole.destination, "message": whole.text} for whole in wholes],
                priority=PRIORITY_BULK,
                mobile_as_number=False,
                idempotency=None,
                kind="submit_sm",
                smpp_account=account.system_id,
            )
        except RateLimited:
            if len(wholes) > 1:
                return [(await self._decide(partner, account, [whole]))[0] for whole in wholes]
            metrics.smpp_throttled(account.system_id, "partner_limit")
            return [(ESME_RTHROTTLED, "")]
        except BadRequest as refused:
            return [(status_of(refused.code), "")] * len(wholes)
        entries = orjson.loads(answer)["responses"]
        if len(wholes) > 1 and any(entry["response-code"] == Code.LOW_CREDIT for entry in entries):
            return [(await self._decide(partner, account, [whole]))[0] for whole in wholes]
        answers = []
        for entry in entries:
            if entry["response-code"] == Code.MESSAGE_SYSTEM_ERROR and entry.get("messageid"):
                answers.append(await self._settle_unknown(partner, entry["messageid"]))
                continue
            status = status_of(entry["response-code"])
            answers.append((status, entry["messageid"] if status == ESME_ROK else ""))
        return answers

    async def _settle_unknown(self, partner: Partner, message_id: str) -> tuple[int, str]:
        """A commit cut off: it may hold the message. ESME_RSYSERR says nothing was accepted
        and the ESME resends, so the store is asked first: an ESME must not pay twice."""
        for attempt in range(UNKNOWN_OUTCOME_CHECKS):
            try:
                stored = await self.store.get_message(partner.id, int(message_id))
            except StoreUnavailable:
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            return (ESME_ROK, message_id) if stored is not None else (ESME_RSYSERR, "")
        log.warning("message %s: its commit was cut off and the store cannot say whether it holds it; answered ESME_RSYSERR", message_id)
        return ESME_RSYSERR, ""

    # -- deliver_sm: receipts and inbound messages -------------------------------------------

    def deliveries_wanted(self) -> None:
        self._deliveries_wanted.set()

    async def _deliver_owed(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DELIVER_POLL_SECONDS):
                    await self._deliveries_wanted.wait()
            self._deliveries_wanted.clear()
            try:
                await self._flush_delivered()
                for system_id in list(self.binds):
                    await self._send_owed_receipts(system_id)
                for partner_id, receivers in self._receivers_by_partner().items():
                    await self._send_owed_inbound(partner_id, receivers)
            except StoreUnavailable as exc:
                log.warning("deliver_sm wait: the store is unavailable: %s", exc)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("deliver_sm could not be sent; trying again")
                await asyncio.sleep(1.0)

    @staticmethod
    def _receivers(sessions: Iterable[PartnerSession]) -> list[PartnerSession]:
        return [s for s in sessions if s.can_receive and s.open and not s.unbinding]

    def _receivers_by_partner(self) -> dict[str, list[PartnerSession]]:
        """Inbound messages go to a receiver of any of the partner's accounts."""
        by_partner: dict[str, list[PartnerSession]] = collections.defaultdict(list)
        for sessions in self.binds.values():
            for session in self._receivers(sessions):
                if session.partner is not None:
                    by_partner[session.partner.id].append(session)
        return by_partner

    @staticmethod
    def _room(receivers: list[PartnerSession]) -> int:
        return sum(max(0, DELIVER_WINDOW - s.deliver_sm_unanswered) for s in receivers)

    def _least_busy(self, receivers: list[PartnerSession]) -> PartnerSession | None:
        session = min(receivers, key=lambda s: s.deliver_sm_unanswered)
        if session.deliver_sm_unanswered >= DELIVER_WINDOW:
            return None
        session.deliver_sm_unanswered += 1
        return session

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)

    async def _send_owed_receipts(self, system_id: str) -> None:
        receivers = self._receivers(self.binds.get(system_id, ()))
        room = self._room(receivers)
        if room <= 0:
            return
        in_flight = self._receipts_in_flight[system_id]
        partner_id = receivers[0].partner.id if receivers[0].partner is not None else ""
        owed = await self.store.read(smpp_accounts.owed_receipts, system_id, partner_id, int(time.time() * 1000), room + len(in_flight))
        for receipt in owed:
            if receipt.message_id in in_flight:
                continue
            session = self._least_busy(receivers)
            if session is None:
                break
            in_flight.add(receipt.message_id)
            self._spawn(self._send_receipt(session, system_id, receipt))

    async def _send_owed_inbound(self, partner_id: str, receivers: list[PartnerSession]) -> None:
        room = self._room(receivers)
        if room <= 0:
            return
        in_flight = self._inbound_in_flight[partner_id]
        owed = await self.store.read(smpp_accounts.owed_inbound, partner_id, int(time.time() * 1000), room + len(in_flight))
        for message in owed:
            if message.inbound_id in in_flight:
                continue
            session = self._least_busy(receivers)
            if session is None:
                break
            in_flight.add(message.inbound_id)
            self._spawn(self._send_inbound(session, partner_id, message))

    async def _deliver(self, session: PartnerSession, pdus: list[DeliverSm]) -> str | None:
        """Sends the deliver_sm in order, each after the last one's answer: None once every
        one was answered ESME_ROK, else what went wrong (the rest is not sent)."""
        try:
            for pdu in pdus:
                response = await session.request(pdu, DELIVER_RESPONSE_SECONDS)
                if not isinstance(response, DeliverSmResp):
                    return "answered generic_nack"
                if response.command_status != ESME_ROK:
                    return f"deliver_sm_resp {response.command_status:#010x}"
        except TimeoutError:
            return f"no deliver_sm_resp within {DELIVER_RESPONSE_SECONDS:g} s"
        except (ConnectionError, OSError):
            return "the bind closed before deliver_sm_resp"
        except Exception:
            log.exception("%s: deliver_sm could not be sent", session.name)
            return "deliver_sm could not be sent"
        finally:
            session.deliver_sm_unanswered -= 1
        return None

    @staticmethod
    def _retry_at(attempts: int) -> int:
        delay = min(DELIVER_RETRY_MAX_SECONDS, DELIVER_RETRY_SECONDS * (attempts + 1))
        return int((time.time() + delay) * 1000)

    async def _send_receipt(self, session: PartnerSession, system_id: str, receipt: OwedReceipt) -> None:
        in_flight = self._receipts_in_flight[system_id]
        error = await self._deliver(session, [receipt_pdu(receipt)])
        metrics.smpp_deliver_sm("receipt", error is None)
        if error is None:
            self.stats["receipts_delivered"] += 1
            self._delivered.append(receipt.message_id)
            self._deliveries_wanted.set()
            return
        self.stats["receipts_refused"] += 1
        try:
            await self.store.write(smpp_accounts.receipt_refused, receipt.message_id, self._retry_at(receipt.attempts))
        except StoreUnavailable:
            pass  # still owed: sent again once the store is back
        finally:
            in_flight.discard(receipt.message_id)

    async def _send_inbound(self, session: PartnerSession, partner_id: str, message: OwedInbound) -> None:
        in_flight = self._inbound_in_flight[partner_id]
        try:
            pdus = inbound_pdus(message)
        except PduError as exc:  # no deliver_sm sequence carries it: the inbox still has it
            log.warning("inbound message %d of partner %s cannot go over SMPP: %s", message.inbound_id, partner_id, exc)
            session.deliver_sm_unanswered -= 1
            error: str | None = str(exc)
        else:
            error = await self._deliver(session, pdus)
        metrics.smpp_deliver_sm("inbound", error is None)
        if error is None:
            self.stats["inbound_delivered"] += 1
            self._inbound_delivered.append(message.inbound_id)
            self._deliveries_wanted.set()
            return
        self.stats["inbound_refused"] += 1
        log.info("%s: inbound message %d not taken (%s); sent again later", session.name, message.inbound_id, error)
        try:
            await self.store.write(smpp_accounts.inbound_refused, message.inbound_id, self._retry_at(message.attempts), error)
        except StoreUnavailable:
            pass  # still owed: sent again once the store is back
        finally:
            in_flight.discard(message.inbound_id)

    async def _flush_delivered(self) -> None:
        """Records the receipts and inbound messages the ESMEs took, one transaction for all."""
        if not self._delivered and not self._inbound_delivered:
            return
        delivered, self._delivered = self._delivered, []
        inbound, self._inbound_delivered = self._inbound_delivered, []
        try:
            await self.store.write(_record_delivered, delivered, inbound, int(time.time() * 1000))
        except BaseException:
            self._delivered.extend(delivered)
            self._inbound_delivered.extend(inbound)
            raise
        for ids in self._receipts_in_flight.values():
            ids.difference_update(delivered)
        for ids in self._inbound_in_flight.values():
            ids.difference_update(inbound)


def _record_delivered(conn: Connection, receipt_ids: list[int], inbound_ids: list[int], now: int) -> None:
    if receipt_ids:
        smpp_accounts.receipts_delivered(conn, receipt_ids, now)
    if inbound_ids:
        smpp_accounts.inbound_delivered(conn, inbound_ids, now)


@contextlib.asynccontextmanager
async def partner_smpp_server(
    settings: Settings, acceptance: Acceptance, host: str, port: int, *, reuse_port: bool = False
) -> AsyncIterator[PartnerSmppServer]:
    server = PartnerSmppServer(settings, acceptance)
    await server.start(host, port, reuse_port=reuse_port)
    try:
        yield server
    finally:
        await server.stop()
