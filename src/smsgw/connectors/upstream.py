"""A route through another provider of this API family (its `sendbulk` and `getdlr`), as a
connector like an SMPP bind: the dispatcher does not know which kind it drives.

- Submits that arrive within `linger` seconds of each other go out as one sendbulk request of
  at most `batch_size` entries. Each request carries an Idempotency-Key derived from the
  route and the message ids of its batch, and a request that got no readable answer (a
  transport error, a dropped connection, 4090) is sent again with the same key and body, so
  the upstream charges and sends it once.
- The upstream's answer codes become verdicts (`verdict_of`): 200 accepted with its
  `messageid`; a refusal of the number (1002, 1003, 1009, 1011) failed, so that another route
  may try; everything about the route itself (credentials, sender id, its credit, its store)
  retried, which takes the route out after a few and lets the next priority take over.
- Receipts: every accepted message's upstream id is polled with `getdlr`, at most
  `poll_rate` requests per second in all, each id again every `poll_interval` seconds until
  its status is final; the final status goes to `on_receipt` like an SMSC's receipt. Ids are
  kept in memory: after a restart, messages still waiting end by the dispatcher's receipt
  sweep (final SentToNetwork).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ..domain.codes import Code
from ..domain.states import DeliveryState
from .base import OutboundMessage, Receipt, ReceiptSink, SubmitOutcome

log = logging.getLogger(__name__)

# Entry codes that refuse the number or the text, not the route: another route may take it.
_REFUSALS = frozenset({Code.NETWORK_NOT_ALLOWED, Code.INVALID_MOBILE, Code.UNSUPPORTED_DATA_TYPE, Code.RECIPIENT_OPTED_OUT})
# Answers that say nothing was stored: the same request may be sent again as it is.
_SEND_AGAIN = frozenset({Code.TRY_AGAIN_LATER, Code.REQUEST_SYSTEM_ERROR})
# By description, which the providers share (their status numbers differ). SentToNetwork is
# final only as smsgw's status 8 (no receipt came); elsewhere it may still change.
_STATES_BY_DESCRIPTION = {state.description: state for state in DeliveryState if state is not DeliveryState.NO_RECEIPT}
_STATS = {
    DeliveryState.DELIVERED: "DELIVRD",
    DeliveryState.ABSENT_SUBSCRIBER: "EXPIRED",
    DeliveryState.DELIVERY_IMPOSSIBLE: "UNDELIV",
    DeliveryState.SENDER_BLACKLISTED: "BLACKLST",
    DeliveryState.UNKNOWN: "UNKNOWN",
    DeliveryState.NO_RECEIPT: "UNKNOWN",
    DeliveryState.CANCELLED: "DELETED",
}


def verdict_of(entry: Any) -> SubmitOutcome:
    """The verdict for one entry of the upstream's `responses`."""
    if not isinstance(entry, dict):
        return SubmitOutcome.retry(f"unreadable entry {str(entry)[:80]!r}", unanswered=True)
    code = _code(entry.get("response-code"))
    description = str(entry.get("response-description", ""))[:120]
    if code == Code.SUCCESS:
        message_id = str(entry.get("messageid") or "")
        if not message_id:
            return SubmitOutcome.retry("accepted without a messageid", code, unanswered=True)
        return SubmitOutcome.accepted([message_id], f"accepted as {message_id}", code)
    if code in _REFUSALS:
        return SubmitOutcome.failed(f"refused {code}: {description}", code)
    if code == Code.MESSAGE_SYSTEM_ERROR and entry.get("messageid"):
        # Its commit was cut off: it may be stored and charged there. Sending it again could
        # send it twice; its getdlr will say whether it exists.
        message_id = str(entry["messageid"])
        return SubmitOutcome.accepted([message_id], f"outcome unknown there, followed as {message_id}", code)
    # 1004 (the route's credit), 1005 without an id (its store) and anything unknown: the route's trouble.
    return SubmitOutcome.retry(f"answered {code if code is not None else '?'}: {description}", code, unanswered=code == Code.MESSAGE_SYSTEM_ERROR)


def state_of(answer: Any) -> DeliveryState | None:
    """The final state in a getdlr answer, or None while it is not final (or unreadable)."""
    if not isinstance(answer, dict) or _code(answer.get("response-code")) != Code.SUCCESS:
        return None
    state = _STATES_BY_DESCRIPTION.get(str(answer.get("delivery-description", "")))
    if state is DeliveryState.SENT_TO_NETWORK and _code(answer.get("delivery-status")) == DeliveryState.NO_RECEIPT:
        return DeliveryState.NO_RECEIPT
    return state if state is not None and state.is_final else None


def _code(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class _Waiting:
    message: OutboundMessage
    done: asyncio.Future[SubmitOutcome]


class UpstreamConnector:
    def __init__(
        self,
        name: str,
        base_url: str,
        partner_id: str,
        api_key: str,
        shortcode: str | None,
        *,
        on_receipt: ReceiptSink | None = None,
        batch_size: int = 1000,
        linger: float = 0.02,
        timeout: float = 30.0,
        attempts: int = 3,
        poll_rate: float = 20.0,
        poll_interval: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.partner_id = partner_id
        self.api_key = api_key
        self.shortcode = shortcode
        self.on_receipt = on_receipt
        self.batch_size = max(1, min(batch_size, 1000))
        self.linger = linger
        self.timeout = timeout
        self.attempts = attempts
        self.poll_rate = poll_rate
        self.poll_interval = poll_interval
        self.stats: collections.Counter[str] = collections.Counter()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._queue: list[_Waiting] = []
        self._flush: asyncio.TimerHandle | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._polled: dict[str, float] = {}  # upstream id -> when to ask again (monotonic)
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_loop(), name=f"upstream {self.name} getdlr")

    async def stop(self) -> None:
        if self._queue:
            self._send_queued()
        if self._batches:
            await asyncio.wait(list(self._batches), timeout=self.timeout)
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def bound(self) -> bool:
        return self._client is not None

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, message: OutboundMessage) -> SubmitOutcome:
        if self._client is None:
            return SubmitOutcome.retry("the upstream route is not started")
        waiting = _Waiting(message, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if len(self._queue) >= self.batch_size:
            self._send_queued()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.linger, self._send_queued)
        return await asyncio.shield(waiting.done)

    def _send_queued(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        while self._queue:
            batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
            task = asyncio.create_task(self._send_batch(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    def idempotency_key(self, batch: list[_Waiting]) -> str:
        ids = ",".join(str(w.message.message_id) for w in batch)
        return hashlib.sha256(f"{self.name}\n{ids}".encode()).hexdigest()[:40]

    async def _send_batch(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = await self._request_batch(batch)
        except Exception as exc:  # the dispatcher must get an outcome for every message
            log.exception("upstream %s: batch of %d failed", self.name, len(batch))
            outcomes = [SubmitOutcome.retry(f"connector error: {type(exc).__name__}", unanswered=True)] * len(batch)
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if outcome.ok:
                self._polled[outcome.smsc_message_ids[0]] = time.monotonic() + self.poll_interval
            if not waiting.done.done():
                waiting.done.set_result(outcome)

    async def _request_batch(self, batch: list[_Waiting]) -> list[SubmitOutcome]:
        client = self._client
        if client is None:
            return [SubmitOutcome.retry("the upstream route stopped")] * len(batch)
        entries = [
            {
                "partnerID": self.partner_id,
                "apikey": self.api_key,
                "pass_type": "plain",
                "clientsmsid": w.message.message_id,
                "mobile": w.message.destination,
                "message": w.message.text,
                "shortcode": self.shortcode or w.message.source,
            }
            for w in batch
        ]
        body = orjson.dumps({"count": len(entries), "smslist": entries})
        headers = {"Content-Type": "application/json", "Idempotency-Key": self.idempotency_key(batch)}
        # Whether the last attempt may have been stored upstream (no readable answer came). The
        # last answer decides: with the same key, a request stored before is answered as such.
        maybe_stored = False
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
            self.stats["requests"] += 1
            try:
                response = await client.post(f"{self.base_url}/api/services/sendbulk", content=body, headers=headers)
            except httpx.ConnectError as exc:
                maybe_stored, problem = False, f"cannot connect: {exc}"
                continue
            except httpx.HTTPError as exc:
                maybe_stored, problem = True, f"{type(exc).__name__}: {exc}"
                continue
            try:
                answer = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                maybe_stored, problem = True, f"HTTP {response.status_code}, not JSON"
                continue
            responses = answer.get("responses") if isinstance(answer, dict) else None
            if isinstance(responses, list) and len(responses) == len(batch):
                self.stats["batches"] += 1
                return [verdict_of(entry) for entry in responses]
            code = _code(answer.get("response-code")) if isinstance(answer, dict) else None
            problem = f"answered {code}: {str(answer.get('response-description', ''))[:120] if isinstance(answer, dict) else ''}"
            if code in _SEND_AGAIN:
                self.stats[f"answered {code}"] += 1
                maybe_stored = False
                continue
            # A refusal of the whole request (credentials, sender id): nothing was stored.
            return [SubmitOutcome.retry(f"upstream {self.name} {problem}", code)] * len(batch)
        self.stats["batches given back"] += 1
        return [SubmitOutcome.retry(f"upstream {self.name}: {problem}", unanswered=maybe_stored)] * len(batch)

    # -- receipts --------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        gap = 1.0 / self.poll_rate if self.poll_rate > 0 else 0.05
        while True:
            now = time.monotonic()
            due = next((upstream_id for upstream_id, when in self._polled.items() if when <= now), None)
            if due is None:
                await asyncio.sleep(min(0.2, self.poll_interval))
                continue
            self._polled.pop(due)
            try:
                final = await self._ask(due)
            except Exception as exc:
                log.warning("upstream %s: getdlr %s failed: %s", self.name, due, exc)
                final = False
            if not final:
                self._polled[due] = time.monotonic() + self.poll_interval
            await asyncio.sleep(gap)

    async def _ask(self, upstream_id: str) -> bool:
        """Asks for one message's status; True once its final status was handed on."""
        client = self._client
        if client is None:
            return False
        self.stats["getdlr"] += 1
        response = await client.post(
            f"{self.base_url}/api/services/getdlr", json={"partnerID": self.partner_id, "apikey": self.api_key, "messageID": upstream_id}
        )
        answer = orjson.loads(response.content)
        state = state_of(answer)
        if state is None:
            return False
        if self.on_receipt is not None:
            receipt = Receipt(
                upstream_id, state, _STATS.get(state, "UNKNOWN"), None, time.time(), "", "", f"getdlr {answer.get('delivery-description')}"
            )
            await self.on_receipt(receipt)
        self.stats["receipts"] += 1
        return True
