"""Delivery report callbacks: the outbox in the store is POSTed to partners' URLs, signed,
retried with backoff until a 2xx. It runs beside dispatch and never holds it up."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections import Counter

import httpx

from ..store import delivery
from .backoff import backoff_ms
from ..store.delivery import DueCallback
from ..store.errors import StoreUnavailable
from ..store.store import Store, now_ms

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Smsgw-Signature"


def signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the exact body bytes with the partner's callback secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class CallbackSender:
    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 100,
        concurrency: int = 20,
        timeout: float = 10.0,
        poll_interval: float = 1.0,
        retry_base_seconds: float = 10.0,
        retry_max_seconds: float = 3600.0,
        lease_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.lease_ms = int(lease_seconds * 1000)
        self.stats: Counter[str] = Counter()
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, headers={"User-Agent": "smsgw-callbacks"})
        self._task = asyncio.create_task(self._run(), name="callbacks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    def wake(self) -> None:
        self._wake.set()

    # The outbox this sender serves (a subclass serves another: dispatch/inbound.py).
    claim = staticmethod(delivery.claim_callbacks)

    @staticmethod
    def record(conn, delivered: list[int], failed: list[tuple[int, int, str]]) -> None:
        _record(conn, delivered, failed)

    async def _run(self) -> None:
        while True:
            try:
                due = await self.store.write(self.claim, now_ms(), self.batch_size, self.lease_ms)
            except StoreUnavailable as exc:
                log.warning("cannot read callbacks: %s", exc)
                due = []
            except Exception:
                log.exception("reading callbacks failed")
                due = []
            if due:
                results = await asyncio.gather(*(self._post(callback) for callback in due))
                delivered = [callback.id for callback, error in zip(due, results) if error is None]
                failed = [
                    (callback.id, now_ms() + backoff_ms(callback.attempts + 1, self.retry_base_seconds, self.retry_max_seconds), error)
                    for callback, error in zip(due, results)
                    if error is not None
                ]
                try:
                    await self.store.write(self.record, delivered, failed)
                except Exception as exc:  # the leases run out and the callbacks go again
                    log.warning("cannot record callback results: %s", exc)
                self.stats["delivered"] += len(delivered)
                self.stats["failed attempts"] += len(failed)
                if len(due) == self.batch_size:
                    continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _post(self, callback: DueCallback) -> str | None:
        """None on a 2xx, else what went wrong. One deadline covers the whole exchange (a
        receiver that trickles bytes must not hold the sender), and the answer's body is
        never read: only its status matters."""
        assert self._client is not None
        headers = {"Content-Type": "application/json"}
        if callback.secret:
            headers[SIGNATURE_HEADER] = signature(callback.secret, callback.body)
        async with self._limit:
            try:
                async with asyncio.timeout(self.timeout):
                    async with self._client.stream("POST", callback.url, content=callback.body, headers=headers) as response:
                        status = response.status_code
            except TimeoutError:
                return f"no answer within {self.timeout:g} s"
            except httpx.HTTPError as exc:
                return f"{type(exc).__name__}: {exc}"[:200]
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"

def _record(conn, delivered: list[int], failed: list[tuple[int, int, str]]) -> None:
    now = now_ms()
    delivery.callbacks_delivered(conn, delivered, now)
    delivery.callbacks_failed(conn, failed)
