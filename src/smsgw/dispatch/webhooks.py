"""Delivery report callbacks: the outbox in the store is POSTed to partners' current URLs,
signed, retried with backoff until a 2xx or given up. It runs beside dispatch and never
holds it up."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import socket
import time
from collections import Counter

import httpx

from .. import metrics
from ..domain.callback_urls import BadCallbackUrl, UnresolvedHost, check_callback_url, host_and_port, refuse_private
from ..domain.identifiers import parse_ip_address
from ..store import callbacks
from ..store.callbacks import DueCallback
from ..store.errors import StoreUnavailable
from ..store.store import Store, now_ms
from .backoff import backoff_ms

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Smsgw-Signature"
TIMESTAMP_HEADER = "X-Smsgw-Timestamp"
SIGNATURE_V2_HEADER = "X-Smsgw-Signature-V2"


def signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the exact body bytes with the partner's callback secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_v2(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `TIMESTAMP.body`: a receiver that checks the timestamp's age can
    refuse a recorded callback played again later."""
    return hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str | None, body: bytes, now_seconds: int) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
        headers[TIMESTAMP_HEADER] = str(now_seconds)
        headers[SIGNATURE_V2_HEADER] = signature_v2(secret, now_seconds, body)
    return headers


async def ensure_public(url: str) -> None:
    """PrivateDestination (a BadCallbackUrl) unless the URL's host is, or resolves now to,
    public addresses only; a name that does not resolve is a BadCallbackUrl too."""
    host, port = host_and_port(url)
    if parse_ip_address(host) is not None:
        refuse_private(host, [host])
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnresolvedHost(f"the URL's host {host} does not resolve: {exc}") from None
    refuse_private(host, [str(info[4][0]) for info in found])


class CallbackSender:
    """Sends the outbox with at most `concurrency` POSTs at a time and `per_partner_concurrency`
    for any one partner, so a partner whose receiver hangs or fails only slows its own
    callbacks. Each POST runs on its own and its outcome is recorded when it ends; nothing one
    POST raises reaches the loop. A callback still failing `give_up_seconds` after it was
    queued is given up, with the reason in its row."""

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 100,
        concurrency: int = 64,
        per_partner_concurrency: int = 16,
        timeout: float = 10.0,
        poll_interval: float = 1.0,
        retry_base_seconds: float = 10.0,
        retry_max_seconds: float = 3600.0,
        give_up_seconds: float = 3 * 86400.0,
        lease_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.per_partner_concurrency = per_partner_concurrency
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.give_up_ms = int(give_up_seconds * 1000)
        # A POST under way must never outlive its lease, or another sender would claim it too.
        self.lease_ms = int(max(lease_seconds, 2 * timeout) * 1000)
        self.stats: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()  # POSTs under way, by partner
        self._sending: set[asyncio.Task[None]] = set()
        self._finished: list[tuple[DueCallback, str | None]] = []  # (callback, error or None), not yet recorded
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, headers={"User-Agent": "smsgw-callbacks"})
        self._task = asyncio.create_task(self._run(), name="callbacks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Not `suppress(CancelledError)`: that would swallow a cancellation of stop() itself.
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._sending):
            task.cancel()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        with contextlib.suppress(Exception):  # what is not recorded goes again when its lease ends
            await self._record_finished()
        if self._client is not None:
            await self._client.aclose()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before the step: a POST that ends during it wakes the next one
            try:
                more = await self._step()
            except Exception:
                log.exception("the callback sender's loop failed; it goes on")
                more = False
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def _step(self) -> bool:
        """Records what finished and claims what there is room for, in one transaction (one
        commit however many POSTs ended meanwhile); True if it should go on at once (it
        claimed and there is room for more)."""
        outcomes = self._outcomes()
        free = self.concurrency - len(self._sending)
        room = {partner: self.per_partner_concurrency - n for partner, n in self._in_flight.items() if n > 0}
        limit = min(self.batch_size, free)
        if limit <= 0 and not any(outcomes):
            return False
        try:
            due = await self.store.write(self.record_and_claim, *outcomes, now_ms(), limit, self.lease_ms, self.per_partner_concurrency, room)
        except StoreUnavailable as exc:  # the leases run out and the finished callbacks go again
            log.warning("cannot record or claim callbacks: %s", exc)
            return False
        self._count(*outcomes)
        for callback in due:
            if callback.url is None:
                self._finished.append((callback, None))
                continue
            self._in_flight[callback.partner_id] += 1
            task = asyncio.create_task(self._send(callback), name=f"callback-{callback.id}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return bool(due) and len(self._sending) < self.concurrency

    # The outbox this sender works through, one transaction each; the inbound forwarder has
    # its own outbox and the same loop.
    record_and_claim = staticmethod(callbacks.record_and_claim_callbacks)
    record_results = staticmethod(callbacks.record_callback_results)

    async def _send(self, callback: DueCallback) -> None:
        try:
            error = await self._post(callback)
        except Exception as exc:  # whatever one POST raises fails that callback only
            log.warning("callback %d of partner %s failed unexpectedly", callback.id, callback.partner_id, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._in_flight[callback.partner_id] -= 1
            if self._in_flight[callback.partner_id] <= 0:
                del self._in_flight[callback.partner_id]
        metrics.callback_attempts([error])
        self._finished.append((callback, error))
        self._wake.set()

    async def _post(self, callback: DueCallback) -> str | None:
        """None on a 2xx, else what went wrong. One deadline covers the whole exchange (a
        receiver that trickles bytes must not hold the sender), and the answer's body is
        never read: only its status matters."""
        assert self._client is not None and callback.url is not None
        try:
            check_callback_url(callback.url)
            if not callback.allow_private:
                await ensure_public(callback.url)
        except BadCallbackUrl as exc:
            log.warning("callback %d of partner %s not sent: %s", callback.id, callback.partner_id, exc)
            return str(exc)
        headers = signed_headers(callback.secret, callback.body, int(time.time()))
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

    async def _record_finished(self) -> None:
        outcomes = self._outcomes()
        await self.store.write(self.record_results, *outcomes, now_ms())
        self._count(*outcomes)

    def _outcomes(self) -> tuple[list[int], list[tuple[int, int, str]], list[tuple[int, int, str]]]:
        """What finished since the last write: delivered ids, (id, next attempt at, error) to
        retry, (id, attempts, reason) given up."""
        finished, self._finished = self._finished, []
        now = now_ms()
        delivered: list[int] = []
        failed: list[tuple[int, int, str]] = []
        given_up: list[tuple[int, int, str]] = []
        for callback, error in finished:
            attempts = callback.attempts + 1
            if callback.url is None:
                given_up.append((callback.id, callback.attempts, "given up: the partner has no callback URL any more"))
            elif error is None:
                delivered.append(callback.id)
            elif now - callback.created_at >= self.give_up_ms:
                hours = (now - callback.created_at) / 3_600_000
                given_up.append((callback.id, attempts, f"given up after {attempts} attempts in {hours:.1f} h: {error}"))
                log.warning("callback %d of partner %s given up after %d attempts: %s", callback.id, callback.partner_id, attempts, error)
            else:
                next_at = now + backoff_ms(attempts, self.retry_base_seconds, self.retry_max_seconds)
                failed.append((callback.id, next_at, error))
                log.info(
                    "callback %d of partner %s failed (%s); attempt %d in %.0f s",
                    callback.id,
                    callback.partner_id,
                    error,
                    attempts + 1,
                    (next_at - now) / 1000,
                )
        return delivered, failed, given_up

    def _count(self, delivered: list[int], failed: list[tuple[int, int, str]], given_up: list[tuple[int, int, str]]) -> None:
        self.stats["delivered"] += len(delivered)
        self.stats["failed attempts"] += len(failed)
        self.stats["given up"] += len(given_up)
