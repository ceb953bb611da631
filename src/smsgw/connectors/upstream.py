"""A route through another provider of this API family (its `sendbulk` and `getdlr`), as a
connector like an SMPP bind: the dispatcher does not know which kind it drives.

- Submits that arrive within `linger` seconds of each other go out as one sendbulk request of
  at most `batch_size` entries, under a new Idempotency-Key. The request (key and entries,
  without the credentials) is written to the store before it is sent, with the request each
  message belongs to. A request that got no readable answer (a transport error, a dropped
  connection, 4090) is sent again with the same key and body; and a message that comes back
  to the connector later (its answer was lost, the dispatcher was killed, its lease ran out)
  goes again in the request the store says it belongs to, byte for byte, so the upstream
  answers it from its idempotency record instead of storing it twice. A message the upstream
  answered with a refusal or a retry loses its request: nothing of it is stored there, and its
  next attempt goes in a new one.
- The upstream's answer codes become verdicts (`verdict_of`): 200 accepted with its
  `messageid`; a refusal of the number (1002, 1003, 1009, 1011) failed, so that another route
  may try; everything about the route itself (credentials, sender id, its credit, its store)
  retried, which takes the route out after a few and lets the next priority take over.
- Receipts: every accepted message's upstream id is polled with `getdlr`, at most
  `poll_rate` requests per second in all, each id again every `poll_interval` seconds until
  its status is final; the final status goes to `on_receipt` like an SMSC's receipt. The
  upstream ids are in the store (the message's part, as an SMSC's id): a connector that
  starts reads, page by page, the route's messages still waiting and follows them too. Before
  asking, it drops the ids whose message became final meanwhile (by the upstream's push to
  api/upstream_receipts.py, or by the receipt sweep).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ..domain.codes import Code
from ..domain.states import DeliveryState
from ..store import upstream as journal
from ..store.errors import StoreUnavailable
from ..store.store import Store, now_ms
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


def state_of_report(report: Any) -> tuple[str, DeliveryState] | None:
    """(the upstream's messageid, the final state) of a delivery-report callback it pushed
    (spec/CONTRACT.md, "Delivery report callback"), or None when it names no final state."""
    if not isinstance(report, dict) or not report.get("messageid"):
        return None
    state: DeliveryState | None = _STATES_BY_DESCRIPTION.get(str(report.get("description", "")))
    if state is DeliveryState.SENT_TO_NETWORK and _code(report.get("status")) == DeliveryState.NO_RECEIPT:
        state = DeliveryState.NO_RECEIPT
    if state is None or not state.is_final:
        return None
    return str(report["messageid"])[:80], state


def receipt_of(upstream_id: str, state: DeliveryState, how: str) -> Receipt:
    """A final status learnt from the upstream, as an SMSC's receipt for its id."""
    return Receipt(upstream_id, state, _STATS.get(state, "UNKNOWN"), None, time.time(), "", "", how)


def _code(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class _Waiting:
    message: OutboundMessage
    done: asyncio.Future[SubmitOutcome]


# Ids of still-waiting messages read from the store at a time, and how few followed ids make
# the poller read the next page.
_BACKLOG_PAGE = 1000
# Followed ids whose message is looked up at once before they are asked (final ones are dropped).
_CHECK_BATCH = 50
_PURGE_INTERVAL = 3600.0


class UpstreamConnector:
    def __init__(
        self,
        name: str,
        base_url: str,
        partner_id: str,
        api_key: str,
        shortcode: str | None,
        *,
        store: Store | None = None,
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
        self.store = store  # None: requests and followed ids are kept in memory only
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
        # Upstream ids followed by getdlr: a heap of (when to ask, upstream id, message id), and the ids in it.
        self._due: list[tuple[float, str, int]] = []
        self._followed: set[str] = set()
        self._backlog_after: int | None = 0  # the store's waiting messages read up to this id; None: all read
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)
        if self._poller is None or self._poller.done():
            self._backlog_after = 0 if self.store is not None else None
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
        self._due.clear()
        self._followed.clear()
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

    async def _send_batch(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = await self._send_requests(batch)
        except Exception as exc:  # the dispatcher must get an outcome for every message
            log.exception("upstream %s: batch of %d failed", self.name, len(batch))
            outcomes = {w.message.message_id: SubmitOutcome.retry(f"connector error: {type(exc).__name__}", unanswered=True) for w in batch}
        for waiting in batch:
            outcome = outcomes[waiting.message.message_id]
            if outcome.ok:
                self._follow(outcome.smsc_message_ids[0], waiting.message.message_id, time.monotonic() + self.poll_interval)
            if not waiting.done.done():
                waiting.done.set_result(outcome)

    def _entry(self, message: OutboundMessage) -> dict[str, Any]:
        return {
            "clientsmsid": message.message_id,
            "mobile": message.destination,
            "message": message.text,
            "shortcode": self.shortcode or message.source,
        }

    async def _send_requests(self, batch: list[_Waiting]) -> dict[int, SubmitOutcome]:
        """Sends the batch: messages that already went out in a request the upstream may have
        stored go again in that one; the others in a new one, written to the store first."""
        ids = [w.message.message_id for w in batch]
        try:
            earlier = await self.store.read(journal.requests_of, ids, now_ms()) if self.store is not None else {}
        except StoreUnavailable as exc:
            return dict.fromkeys(ids, SubmitOutcome.retry(f"upstream {self.name}: cannot read its requests: {exc}"))
        requests: dict[str, bytes] = {}
        fresh = [w for w in batch if w.message.message_id not in earlier]
        outcomes: dict[int, SubmitOutcome] = {}
        if fresh:
            key = secrets.token_hex(16)
            entries = orjson.dumps([self._entry(w.message) for w in fresh])
            try:
                if self.store is not None:
                    await self.store.write(
                        journal.remember_request, key, self.name, entries.decode(), [w.message.message_id for w in fresh], now_ms()
                    )
                requests[key] = entries
            except StoreUnavailable as exc:
                outcomes.update((w.message.message_id, SubmitOutcome.retry(f"upstream {self.name}: cannot write its request: {exc}")) for w in fresh)
        for key, entries_json in earlier.values():
            requests[key] = entries_json.encode()
        if earlier:
            self.stats["requests sent again"] += len({key for key, _ in earlier.values()})
        answers = await asyncio.gather(*(self._request(key, entries) for key, entries in requests.items()))
        wanted = set(ids)
        settled = []
        for answer, answered in answers:
            for message_id, outcome in answer.items():
                if message_id in wanted:
                    outcomes[message_id] = outcome
                    # Answered and not taken: whatever the upstream keeps of it is that answer;
                    # its next attempt is a new request.
                    if answered and not outcome.ok:
                        settled.append(message_id)
        for message_id in ids:
            outcomes.setdefault(message_id, SubmitOutcome.retry(f"upstream {self.name}: its answer did not name the message", unanswered=True))
        if settled and self.store is not None:
            with contextlib.suppress(StoreUnavailable):
                await self.store.write(journal.forget_messages, settled)
        return outcomes

    async def _request(self, key: str, entries_json: bytes) -> tuple[dict[int, SubmitOutcome], bool]:
        """One sendbulk request, sent again with the same key and body while no readable
        answer comes: message id -> outcome, and whether the upstream gave a readable answer."""
        entries = orjson.loads(entries_json)
        message_ids = [int(entry["clientsmsid"]) for entry in entries]
        client = self._client
        if client is None:
            return dict.fromkeys(message_ids, SubmitOutcome.retry("the upstream route stopped")), False
        credentials = {"partnerID": self.partner_id, "apikey": self.api_key, "pass_type": "plain"}
        body = orjson.dumps({"count": len(entries), "smslist": [{**credentials, **entry} for entry in entries]})
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
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
            if isinstance(responses, list) and len(responses) == len(entries):
                self.stats["batches"] += 1
                return {message_id: verdict_of(entry) for message_id, entry in zip(message_ids, responses, strict=True)}, True
            code = _code(answer.get("response-code")) if isinstance(answer, dict) else None
            problem = f"answered {code}: {str(answer.get('response-description', ''))[:120] if isinstance(answer, dict) else ''}"
            if code in _SEND_AGAIN:
                self.stats[f"answered {code}"] += 1
                maybe_stored = False
                continue
            # A refusal of the whole request (credentials, sender id): nothing was stored.
            return dict.fromkeys(message_ids, SubmitOutcome.retry(f"upstream {self.name} {problem}", code)), True
        self.stats["batches given back"] += 1
        # A request the upstream may have stored goes again with its key and body, which the
        # store keeps: sending it again is then no duplicate, unlike an unanswered submit_sm.
        unanswered = maybe_stored and self.store is None
        return dict.fromkeys(message_ids, SubmitOutcome.retry(f"upstream {self.name}: {problem}", unanswered=unanswered)), False

    # -- receipts --------------------------------------------------------------------------

    def _follow(self, upstream_id: str, message_id: int, when: float) -> None:
        if upstream_id not in self._followed:
            self._followed.add(upstream_id)
            heapq.heappush(self._due, (when, upstream_id, message_id))

    async def _read_backlog(self) -> None:
        """The next page of this route's messages waiting in the store (those of a run before)."""
        if self.store is None or self._backlog_after is None or len(self._followed) >= _BACKLOG_PAGE:
            return
        page = await self.store.read(journal.waiting_for_receipts, self.name, self._backlog_after, _BACKLOG_PAGE)
        now = time.monotonic()
        for message_id, upstream_id in page:
            self._follow(upstream_id, message_id, now)
        self._backlog_after = page[-1][0] if len(page) == _BACKLOG_PAGE else None

    async def _still_open(self, due: list[tuple[float, str, int]]) -> list[tuple[float, str, int]]:
        if self.store is None:
            return due
        open_ids = await self.store.read(journal.open_messages, [message_id for _, _, message_id in due])
        for _, upstream_id, message_id in due:
            if message_id not in open_ids:
                self._followed.discard(upstream_id)
                self.stats["final before asked"] += 1
        return [item for item in due if item[2] in open_ids]

    async def _poll_loop(self) -> None:
        gap = 1.0 / self.poll_rate if self.poll_rate > 0 else 0.05
        purge_at = time.monotonic()
        while True:
            due: list[tuple[float, str, int]] = []
            try:
                if self.store is not None and time.monotonic() >= purge_at:
                    await self.store.write(journal.purge, now_ms())
                    purge_at = time.monotonic() + _PURGE_INTERVAL
                await self._read_backlog()
                now = time.monotonic()
                while self._due and self._due[0][0] <= now and len(due) < _CHECK_BATCH:
                    due.append(heapq.heappop(self._due))
                if not due:
                    await asyncio.sleep(min(0.2, self.poll_interval))
                    continue
                due = await self._still_open(due)
            except Exception as exc:  # the store away, or a bug: the poller must go on either way
                if isinstance(exc, StoreUnavailable):
                    log.warning("upstream %s: cannot read the messages to follow: %s", self.name, exc)
                else:
                    log.exception("upstream %s: reading the messages to follow failed", self.name)
                for item in due:
                    heapq.heappush(self._due, item)
                await asyncio.sleep(1.0)
                continue
            for _, upstream_id, message_id in due:
                try:
                    final = await self._ask(upstream_id)
                except Exception as exc:
                    log.warning("upstream %s: getdlr %s failed: %s", self.name, upstream_id, exc)
                    final = False
                if final:
                    self._followed.discard(upstream_id)
                else:
                    heapq.heappush(self._due, (time.monotonic() + self.poll_interval, upstream_id, message_id))
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
            await self.on_receipt(receipt_of(upstream_id, state, f"getdlr {answer.get('delivery-description')}"))
        self.stats["receipts"] += 1
        return True
