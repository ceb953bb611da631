"""The blocking client. Bulk sends run on a small thread pool, `concurrency` requests at a
time, and come back in input order."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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


class Client(ClientCore):
    """A client of the sendbulk API family (smsgw, and providers that serve the same API).

        with Client("https://sms.example.com", "demo", api_key, shortcode="SMSGW") as sms:
            results = sms.send_bulk({"mobile": m, "message": t} for m, t in rows)

    `concurrency` requests run at once; `batch_size` messages go in one request; failed
    attempts are retried by `retry` (see RetryPolicy) with the same Idempotency-Key.
    `http_client` lets you bring your own httpx.Client (proxies, TLS settings); it is
    not closed by `close()`.
    """

    def __init__(
        self, url: str, partner_id: str, api_key: str, shortcode: str | None = None, *, http_client: httpx.Client | None = None, **options: Any
    ) -> None:
        super().__init__(url, partner_id, api_key, shortcode, **options)
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
            limits=httpx.Limits(max_connections=max(10, self.concurrency), max_keepalive_connections=max(10, self.concurrency)),
        )
        self._closing = threading.Event()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> Client:
        """A client from SMSGW_URL, SMSGW_PARTNER_ID, SMSGW_API_KEY and SMSGW_SHORTCODE;
        keyword arguments override them."""
        names = ("url", "partner_id", "api_key", "shortcode")
        settings = cls.env_settings(env, **{k: options.pop(k) for k in names if k in options})
        return cls(**settings, **options)

    def close(self) -> None:
        self._closing.set()
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the API ----------------------------------------------------------------------------

    def send_sms(
        self,
        mobile: str | int,
        message: str,
        *,
        clientsmsid: str | int | None = None,
        time_to_send: str | int | None = None,
        shortcode: str | None = None,
    ) -> SendResult:
        """One message to one number (the `sendsms` endpoint)."""
        if isinstance(mobile, str) and "," in mobile:
            raise ValueError("send_sms takes one number; use send_bulk for several")
        body = sms_body(self.credentials, self._shortcode(shortcode), Message(mobile, message, clientsmsid, time_to_send))
        doc, _ = self._exchange("sendsms", body, uuid.uuid4().hex)
        return send_results(doc, 1)[0]

    def send_bulk(self, messages: Iterable[MessageLike], *, shortcode: str | None = None) -> list[SendResult]:
        """One result per message, in input order, for any number of messages.

        Raises the typed SmsgwError of the first request the provider refused as a whole
        (1006, 1001, ...) or that kept failing after the retries; its `results` attribute
        holds every result obtained, including those of requests that were in flight."""
        collected: list[SendResult] = []
        try:
            for result in self.iter_send_bulk(messages, shortcode=shortcode):
                collected.append(result)
        except SmsgwError as exc:
            exc.results = collected + exc.results
            raise
        return collected

    def iter_send_bulk(self, messages: Iterable[MessageLike], *, shortcode: str | None = None) -> Iterator[SendResult]:
        """Results one by one, in input order, reading `messages` lazily: memory holds at
        most 2 × concurrency batches, however long the input.

        On a request-level error no further input is read, the requests in flight finish,
        and the error is raised with the results of those requests in `results`."""
        failure: BatchOutcome | None = None
        later: list[SendResult] = []
        for outcome in self.iter_send_batches(self.batches(messages), shortcode=shortcode, stop_on_error=True):
            if failure is not None:
                later.extend(outcome.results or ())
            elif outcome.error is not None:
                failure = outcome
            else:
                assert outcome.results is not None
                yield from outcome.results
        if failure is not None:
            raise_first_error(failure, later)

    def iter_send_batches(
        self, batches: Iterable[Batch], *, shortcode: str | None = None, derive_key: Callable[[bytes], str] | None = None, stop_on_error: bool = True
    ) -> Iterator[BatchOutcome]:
        """The building block of bulk sends: one BatchOutcome per Batch, in input order, with
        at most `concurrency` requests in flight. Request-level failures come back as
        outcomes with `error` set, never raised, so that the caller sees every request's fate.

        Stopping early (closing the generator) waits for the requests already sent, whose
        outcomes are then lost to the caller; to stop cleanly, end the `batches` iterable
        instead and read the remaining outcomes. With `stop_on_error` (the default), once
        a request has failed no further batch is read or sent; the outcomes of the requests
        already in flight still come.

        `derive_key` makes each request's Idempotency-Key from its exact body instead of
        taking the batch's own: a later run that rebuilds the same request then gets the
        same key (see smsgw.client.campaign)."""
        code = self._shortcode(shortcode)
        source = iter(batches)
        cancel = threading.Event()
        window: deque[Future[BatchOutcome]] = deque()
        exhausted = False
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="smsgw-send") as pool:
            try:
                while True:
                    running = sum(1 for future in window if not future.done())
                    if stop_on_error and not exhausted and any(_failed(future) for future in window):
                        exhausted = True  # start nothing after a request-level failure
                    # A bounded window of finished-but-unreturned outcomes keeps memory flat
                    # when the oldest request is slow and the others race ahead.
                    while not exhausted and running < self.concurrency and len(window) < 2 * self.concurrency:
                        try:
                            batch = next(source)
                        except StopIteration:
                            exhausted = True
                            break
                        window.append(self._start(pool, batch, code, cancel, derive_key))
                        running += 1
                    if not window:
                        return
                    head = window[0]
                    if not head.done():
                        wait([future for future in window if not future.done()], return_when=FIRST_COMPLETED)
                        continue
                    window.popleft()
                    yield head.result()
            finally:
                cancel.set()  # requests waiting to retry give up instead of sleeping on
                for future in window:
                    future.cancel()

    def opted_out(self, numbers: Iterable[str | int], *, shortcode: str | None = None) -> list[str]:
        """The numbers of `numbers` on the partner's opt-out list for the shortcode (a send to
        them gets 1011 and is not charged), as given, in their order (`check_optout`)."""
        return (self.check_optout(numbers, shortcode=shortcode)).opted_out

    def check_optout(self, numbers: Iterable[str | int], *, shortcode: str | None = None) -> OptOutAnswer:
        """smsgw's own `checkoptout` call, `batch_size` numbers a request: which of `numbers`
        are on the partner's opt-out list for the shortcode, and whether (with which footer
        per network) its messages get the opt-out footer. A provider without that call answers
        HTTP 404, raised as an SmsgwError with that `http_status`."""
        code = self._shortcode(shortcode)
        listed: list[str] = []
        answer = OptOutAnswer(listed)
        source = iter(numbers)
        while chunk := list(islice(source, self.batch_size)):
            doc, _ = self._exchange("checkoptout", optout_check_body(self.credentials, code, chunk), None)
            answer = optout_check_result(doc)
            listed.extend(answer.opted_out)
        return dataclasses.replace(answer, opted_out=listed)

    def balance(self) -> Balance:
        doc, _ = self._exchange("getbalance", credentials_body(self.credentials), None)
        return balance_result(doc)

    def delivery_report(self, message_id: str | int) -> DeliveryReport:
        """The delivery status of one message; raises NoDeliveryReport (1008) for an id that
        does not exist or is not yours."""
        doc, _ = self._exchange("getdlr", credentials_body(self.credentials, messageID=str(message_id)), None)
        return delivery_report_result(doc, str(message_id))

    # -- transport ------------------------------------------------------------------------------

    def _start(
        self, pool: ThreadPoolExecutor, batch: Batch, shortcode: str, cancel: threading.Event, derive_key: Callable[[bytes], str] | None
    ) -> Future[BatchOutcome]:
        if not batch.messages:
            done: Future[BatchOutcome] = Future()
            done.set_result(BatchOutcome(batch, []))
            return done
        body = self._batch_body(batch, shortcode)
        if derive_key is not None:
            batch = dataclasses.replace(batch, idempotency_key=derive_key(body))
        return pool.submit(self._send_batch, batch, body, cancel)

    def _send_batch(self, batch: Batch, body: bytes, cancel: threading.Event) -> BatchOutcome:
        try:
            doc, attempts = self._exchange("sendbulk", body, batch.idempotency_key, cancel)
        except SmsgwError as exc:
            return BatchOutcome(batch, None, exc, exc.attempts)
        return self._batch_outcome(batch, doc, attempts)

    def _exchange(
        self, endpoint: str, body: bytes, idempotency_key: str | None, cancel: threading.Event | None = None
    ) -> tuple[Mapping[str, Any], int]:
        """POSTs `body` until an answer, a final refusal, or the retries are spent."""
        url = service_url(self.url, endpoint)
        headers = self._request_headers(idempotency_key)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.post(url, content=body, headers=headers)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                # A wrong URL will not get better by retrying.
                raise TransportError(f"{endpoint}: {exc}") from exc
            except httpx.TransportError as exc:
                reading = transport_failure(exc, endpoint)
            else:
                reading = read_response(response.status_code, response.content, response.headers)
            if reading.error is None:
                assert reading.document is not None
                return reading.document, attempt
            delay = self._retry_delay(endpoint, attempt, reading)
            stopping = (cancel is not None and cancel.is_set()) or self._closing.is_set()
            if delay is None or stopping or self._wait(delay, cancel):
                reading.error.attempts = attempt
                raise reading.error

    def _wait(self, delay: float, cancel: threading.Event | None) -> bool:
        """Sleeps `delay` seconds; True if the client was closed or the send cancelled."""
        if cancel is None:
            return self._closing.wait(delay)
        # Either event ends the wait; polling in short steps keeps it simple and bounded.
        remaining = delay
        while remaining > 0:
            step = min(remaining, 0.1)
            if cancel.wait(step) or self._closing.is_set():
                return True
            remaining -= step
        return False


def _failed(future: Future[BatchOutcome]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None and future.result().error is not None
