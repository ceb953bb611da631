"""The asyncio client: the same API as `Client`, awaited; bulk sends run as tasks,
`concurrency` requests at a time, and come back in input order."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from itertools import islice
from typing import Any

import httpx

from ._base import ClientCore, MessageLike, raise_first_error
from .errors import SmsgwError, TransportError
from .models import Balance, Batch, BatchOutcome, DeliveryReport, Message, OptOutAnswer, SendResult
from .protocol import (
    balance_result,
    credentials_body,
    delivery_report_result,
    optout_check_body,
    optout_check_result,
    read_response,
    send_results,
    service_url,
    sms_body,
    transport_failure,
)


class AsyncClient(ClientCore):
    """The asyncio twin of `Client`:

    async with AsyncClient(url, "demo", api_key, shortcode="SMSGW") as sms:
        async for result in sms.iter_send_bulk(messages):
            ...
    """

    def __init__(
        self, url: str, partner_id: str, api_key: str, shortcode: str | None = None, *, http_client: httpx.AsyncClient | None = None, **options: Any
    ) -> None:
        super().__init__(url, partner_id, api_key, shortcode, **options)
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
            limits=httpx.Limits(max_connections=max(10, self.concurrency), max_keepalive_connections=max(10, self.concurrency)),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> AsyncClient:
        names = ("url", "partner_id", "api_key", "shortcode")
        settings = cls.env_settings(env, **{k: options.pop(k) for k in names if k in options})
        return cls(**settings, **options)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- the API ----------------------------------------------------------------------------

    async def send_sms(
        self,
        mobile: str | int,
        message: str,
        *,
        clientsmsid: str | int | None = None,
        time_to_send: str | int | None = None,
        shortcode: str | None = None,
    ) -> SendResult:
        if isinstance(mobile, str) and "," in mobile:
            raise ValueError("send_sms takes one number; use send_bulk for several")
        body = sms_body(self.credentials, self._shortcode(shortcode), Message(mobile, message, clientsmsid, time_to_send))
        doc, _ = await self._exchange("sendsms", body, uuid.uuid4().hex)
        return send_results(doc, 1)[0]

    async def send_bulk(self, messages: Iterable[MessageLike] | AsyncIterable[MessageLike], *, shortcode: str | None = None) -> list[SendResult]:
        collected: list[SendResult] = []
        try:
            async for result in self.iter_send_bulk(messages, shortcode=shortcode):
                collected.append(result)
        except SmsgwError as exc:
            exc.results = collected + exc.results
            raise
        return collected

    async def iter_send_bulk(
        self, messages: Iterable[MessageLike] | AsyncIterable[MessageLike], *, shortcode: str | None = None
    ) -> AsyncIterator[SendResult]:
        failure: BatchOutcome | None = None
        later: list[SendResult] = []
        async for outcome in self.iter_send_batches(self._abatches(messages), shortcode=shortcode, stop_on_error=True):
            if failure is not None:
                later.extend(outcome.results or ())
            elif outcome.error is not None:
                failure = outcome
            else:
                assert outcome.results is not None
                for result in outcome.results:
                    yield result
        if failure is not None:
            raise_first_error(failure, later)

    async def iter_send_batches(
        self,
        batches: Iterable[Batch] | AsyncIterable[Batch],
        *,
        shortcode: str | None = None,
        derive_key: Callable[[bytes], str] | None = None,
        stop_on_error: bool = True,
    ) -> AsyncIterator[BatchOutcome]:
        """As `Client.iter_send_batches` (including `derive_key` and `stop_on_error`).
        Closing the generator early cancels the requests in flight."""
        code = self._shortcode(shortcode)
        source = _aiter(batches)
        window: deque[asyncio.Future[BatchOutcome]] = deque()
        exhausted = False
        try:
            while True:
                running = sum(1 for task in window if not task.done())
                if stop_on_error and not exhausted and any(_failed(task) for task in window):
                    exhausted = True  # start nothing after a request-level failure
                while not exhausted and running < self.concurrency and len(window) < 2 * self.concurrency:
                    try:
                        batch = await anext(source)
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    window.append(self._start(batch, code, derive_key))
                    running += 1
                if not window:
                    return
                head = window[0]
                if not head.done():
                    await asyncio.wait([task for task in window if not task.done()], return_when=asyncio.FIRST_COMPLETED)
                    continue
                window.popleft()
                yield head.result()
        finally:
            for task in window:
                task.cancel()
            if window:
                await asyncio.gather(*window, return_exceptions=True)
            await source.aclose()

    async def opted_out(self, numbers: Iterable[str | int], *, shortcode: str | None = None) -> list[str]:
        """The numbers of `numbers` on the partner's opt-out list for the shortcode (a send to
        them gets 1011 and is not charged), as given, in their order (`check_optout`)."""
        return (await self.check_optout(numbers, shortcode=shortcode)).opted_out

    async def check_optout(self, numbers: Iterable[str | int], *, shortcode: str | None = None) -> OptOutAnswer:
        """smsgw's own `checkoptout` call, `batch_size` numbers a request: which of `numbers`
        are on the partner's opt-out list for the shortcode, and whether (with which footer
        per network) its messages get the opt-out footer. A provider without that call answers
        HTTP 404, raised as an SmsgwError with that `http_status`."""
        code = self._shortcode(shortcode)
        listed: list[str] = []
        answer = OptOutAnswer(listed)
        source = iter(numbers)
        while chunk := list(islice(source, self.batch_size)):
            doc, _ = await self._exchange("checkoptout", optout_check_body(self.credentials, code, chunk), None)
            answer = optout_check_result(doc)
            listed.extend(answer.opted_out)
        return dataclasses.replace(answer, opted_out=listed)

    async def balance(self) -> Balance:
        doc, _ = await self._exchange("getbalance", credentials_body(self.credentials), None)
        return balance_result(doc)

    async def delivery_report(self, message_id: str | int) -> DeliveryReport:
        doc, _ = await self._exchange("getdlr", credentials_body(self.credentials, messageID=str(message_id)), None)
        return delivery_report_result(doc, str(message_id))

    # -- transport ------------------------------------------------------------------------------

    async def _abatches(self, messages: Iterable[MessageLike] | AsyncIterable[MessageLike]) -> AsyncIterator[Batch]:
        if not isinstance(messages, AsyncIterable):
            for batch in self.batches(messages):
                yield batch
            return
        chunk: list[Message] = []
        async for item in messages:
            chunk.append(Message.coerce(item))
            if len(chunk) == self.batch_size:
                yield Batch(chunk)
                chunk = []
        if chunk:
            yield Batch(chunk)

    def _start(self, batch: Batch, shortcode: str, derive_key: Callable[[bytes], str] | None) -> asyncio.Future[BatchOutcome]:
        if not batch.messages:
            done: asyncio.Future[BatchOutcome] = asyncio.get_running_loop().create_future()
            done.set_result(BatchOutcome(batch, []))
            return done
        body = self._batch_body(batch, shortcode)
        if derive_key is not None:
            batch = dataclasses.replace(batch, idempotency_key=derive_key(body))
        return asyncio.ensure_future(self._send_batch(batch, body))

    async def _send_batch(self, batch: Batch, body: bytes) -> BatchOutcome:
        try:
            doc, attempts = await self._exchange("sendbulk", body, batch.idempotency_key)
        except SmsgwError as exc:
            return BatchOutcome(batch, None, exc, exc.attempts)
        return self._batch_outcome(batch, doc, attempts)

    async def _exchange(self, endpoint: str, body: bytes, idempotency_key: str | None) -> tuple[Mapping[str, Any], int]:
        url = service_url(self.url, endpoint)
        headers = self._request_headers(idempotency_key)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.post(url, content=body, headers=headers)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise TransportError(f"{endpoint}: {exc}") from exc
            except httpx.TransportError as exc:
                reading = transport_failure(exc, endpoint)
            else:
                reading = read_response(response.status_code, response.content, response.headers)
            if reading.error is None:
                assert reading.document is not None
                return reading.document, attempt
            delay = self._retry_delay(endpoint, attempt, reading)
            if delay is None:
                reading.error.attempts = attempt
                raise reading.error
            await asyncio.sleep(delay)


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _failed(task: asyncio.Future[BatchOutcome]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None and task.result().error is not None
