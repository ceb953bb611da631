"""Inbound messages from carriers: each deliver_sm that is not a receipt is stored (its part,
until the message is whole) before the SMSC gets its deliver_sm_resp; whole messages go to
their partner's endpoint through the outbox machinery of delivery reports, and the endpoint's
answer can go back to the subscriber as an auto-reply.

Signing: a POST carries X-Smsgw-Signature, hex HMAC-SHA256 of the JSON body with the
partner's callback secret; a GET carries the same of its query string (the bytes after `?`,
exactly as sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import httpx
import orjson
from sqlalchemy.engine import Connection

from ..config import Settings
from ..connectors.base import MobileOriginated
from ..domain.callback_urls import BadCallbackUrl, check_callback_url
from ..store import inbound
from ..store.errors import StoreUnavailable
from ..store.inbound import Consents, DueForward, InboundPart
from ..store.store import Store, now_ms
from .webhooks import SIGNATURE_HEADER, CallbackSender, ensure_public, signature

log = logging.getLogger(__name__)

# An auto-reply is a message, at most a few parts: a longer answer is not read further.
MAX_REPLY_BYTES = 4096

AutoReply = Callable[[DueForward, str], Awaitable[None]]


def consents_of(settings: Settings) -> Consents:
    return Consents(settings.optout_keywords, settings.optin_keywords, settings.inbound_duplicate_seconds * 1000)


class InboundReceiver:
    """The `on_mobile_originated` of every SMSC connection: stores, then lets the SMSC go, then
    marks the message answered (store/inbound.py says why)."""

    def __init__(self, store: Store, settings: Settings, on_stored: Callable[[], None] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.consents = consents_of(settings)
        self.on_stored = on_stored
        self._to_mark: list[int] = []
        self._marking: asyncio.Task[None] | None = None

    def part_of(self, message: MobileOriginated) -> InboundPart:
        data = message.user_data
        normalised = self.settings.networks.normalise(message.source)
        msisdn = normalised.digits if normalised is not None else message.source.lstrip("+")
        where = message.concatenation
        if where is None or where.total <= 1 or not 1 <= where.number <= where.total:
            return InboundPart(msisdn, message.destination, message.data_coding, data)
        return InboundPart(msisdn, message.destination, message.data_coding, data, where.reference, where.total, where.number)

    async def __call__(self, message: MobileOriginated) -> Callable[[], None] | None:
        # Raising here answers the deliver_sm ESME_RX_T_APPN: the SMSC keeps it and resends.
        received = await self.store.write(inbound.receive, self.part_of(message), self.consents, now_ms())
        stored = received.message
        if stored is not None:
            log.info(
                "inbound message %d from %s to %s for %s", stored.id, message.source, message.destination, stored.partner_id or "nobody (unrouted)"
            )
            if self.on_stored is not None:
                self.on_stored()
        answers = received.answers
        return None if answers is None else lambda: self._answered(answers)

    def _answered(self, inbound_id: int) -> None:
        self._to_mark.append(inbound_id)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.get_running_loop().create_task(self._mark(), name="inbound answered marks")

    async def _mark(self) -> None:
        # Whatever is answered while one transaction of marks is written goes into the next.
        while self._to_mark:
            ids, self._to_mark = self._to_mark, []
            try:
                await self.store.write(inbound.mark_answered, ids, now_ms())
            except StoreUnavailable as exc:
                # Unmarked, they only stay recognisable as resends longer: try again shortly.
                log.warning("%d inbound messages not marked answered yet: %s", len(ids), exc)
                self._to_mark = ids + self._to_mark
                await asyncio.sleep(1)
            except Exception:
                log.exception("%d inbound messages could not be marked answered; they stay recognisable as resends", len(ids))

    async def close(self) -> None:
        """Writes the marks still queued (for a few seconds at most, the store may be away)."""
        if self._marking is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._marking


class InboundForwarder(CallbackSender):
    """Forwards inbound messages to partners' endpoints: the callback sender's loop, leases and
    backoff over the inbound outbox, with GET or POST and the endpoint's answer read."""

    def __init__(self, store: Store, settings: Settings, auto_reply: AutoReply | None = None, **options) -> None:
        options.setdefault("timeout", settings.inbound_timeout_seconds)
        options.setdefault("retry_base_seconds", settings.callback_retry_base_seconds)
        super().__init__(store, **options)
        self.auto_reply = auto_reply
        self.consents = consents_of(settings)
        self.parts_timeout_ms = settings.inbound_parts_timeout_seconds * 1000

    def record_and_claim(  # type: ignore[override]
        self,
        conn: Connection,
        delivered: list[int],
        failed: list[tuple[int, int, str]],
        given_up: list[tuple[int, int, str]],
        now: int,
        limit: int,
        lease_ms: int,
        _per_partner: int,
        _room: dict[str, int],
    ) -> list[DueForward]:
        # Forwards are far fewer than receipts: the per-partner share is not applied to claims,
        # only the sender's overall and per-partner bounds on POSTs under way.
        return inbound.record_and_claim_forwards(conn, delivered, failed, given_up, now, limit, lease_ms, now - self.parts_timeout_ms, self.consents)

    record_results = staticmethod(inbound.record_forwards)

    async def _post(self, forward: DueForward) -> str | None:  # type: ignore[override]
        """None once the endpoint answered 2xx (and its auto-reply, if any, is stored), else
        what went wrong."""
        assert self._client is not None and forward.url is not None
        try:
            check_callback_url(forward.url)
            if not forward.allow_private:
                await ensure_public(forward.url)
        except BadCallbackUrl as exc:
            log.warning("inbound message %d of partner %s not forwarded: %s", forward.id, forward.partner_id, exc)
            return str(exc)
        payload = forward.payload()
        headers: dict[str, str] = {}
        if forward.method == "GET":
            query = urlencode(payload)
            url, content = forward.url + ("&" if "?" in forward.url else "?") + query, None
            signed = query.encode()
        else:
            url, content = forward.url, orjson.dumps(payload)
            headers["Content-Type"] = "application/json"
            signed = content
        if forward.secret:
            headers[SIGNATURE_HEADER] = signature(forward.secret, signed)
        try:
            async with asyncio.timeout(self.timeout):
                async with self._client.stream(forward.method, url, content=content, headers=headers) as response:
                    status = response.status_code
                    answer = b""
                    if 200 <= status < 300 and forward.auto_reply and self.auto_reply is not None:
                        async for chunk in response.aiter_bytes():
                            answer += chunk
                            if len(answer) > MAX_REPLY_BYTES:
                                break
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        if not 200 <= status < 300:
            return f"HTTP {status}"
        text = answer.decode("utf-8", errors="replace").strip()
        if text and self.auto_reply is not None:
            if len(answer) > MAX_REPLY_BYTES:
                log.warning("inbound message %d: the auto-reply of %s is over %d bytes; not sent", forward.id, forward.partner_id, MAX_REPLY_BYTES)
                return None
            try:
                await self.auto_reply(forward, text)
            except StoreUnavailable as exc:
                # The forward goes again; the reply's idempotency key keeps it from being sent twice.
                return f"auto-reply not stored: {exc}"[:200]
            except Exception:
                log.exception("inbound message %d: the auto-reply could not be sent", forward.id)
        return None
