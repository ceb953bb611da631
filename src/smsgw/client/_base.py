"""What the blocking and the asyncio client share: settings, batching, the retry decision."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from .errors import SmsgwError
from .models import Batch, BatchOutcome, Message, RetryEvent
from .protocol import Attempt, Credentials, RetryPolicy, bulk_body, send_results

log = logging.getLogger("smsgw.client")

DEFAULT_BATCH_SIZE = 1000  # the API's limit per sendbulk request
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 60.0  # seconds; a 1000-message request is answered after its commit

ENV_URL = "SMSGW_URL"
ENV_PARTNER_ID = "SMSGW_PARTNER_ID"
ENV_API_KEY = "SMSGW_API_KEY"
ENV_SHORTCODE = "SMSGW_SHORTCODE"

MessageLike = Message | Mapping[str, Any] | Sequence[Any]


class ClientCore:
    """Settings and the I/O-free parts of a client."""

    def __init__(
        self,
        url: str,
        partner_id: str,
        api_key: str,
        shortcode: str | None = None,
        *,
        pass_type: str = "plain",
        timeout: float = DEFAULT_TIMEOUT,
        concurrency: int = DEFAULT_CONCURRENCY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not url or "://" not in url:
            raise ValueError(f"url must be an http:// or https:// address, got {url!r}")
        if not partner_id:
            raise ValueError("partner_id is required")
        if not api_key:
            raise ValueError("api_key is required")
        if pass_type not in ("plain", "bm5"):
            raise ValueError("pass_type must be 'plain' or 'bm5'")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.url = url
        self.shortcode = shortcode
        self.credentials = Credentials(str(partner_id), api_key, pass_type)
        self.timeout = timeout
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.extra_headers = dict(headers or {})

    @classmethod
    def env_settings(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
        env = os.environ if env is None else env
        settings: dict[str, Any] = {
            "url": env.get(ENV_URL),
            "partner_id": env.get(ENV_PARTNER_ID),
            "api_key": env.get(ENV_API_KEY),
            "shortcode": env.get(ENV_SHORTCODE) or None,
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        for name, variable in (("url", ENV_URL), ("partner_id", ENV_PARTNER_ID), ("api_key", ENV_API_KEY)):
            if not settings.get(name):
                raise ValueError(f"{variable} is not set (or pass {name}=...)")
        return settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, partner_id={self.credentials.partner_id!r}, shortcode={self.shortcode!r})"

    # -- building requests ----------------------------------------------------------------------

    def _shortcode(self, shortcode: str | None) -> str:
        chosen = shortcode or self.shortcode
        if not chosen:
            raise ValueError("no shortcode: give shortcode= to the client or to this call")
        return chosen

    def batches(self, messages: Iterable[MessageLike]) -> Iterator[Batch]:
        """Consecutive batches of at most `batch_size` messages, each with a fresh key,
        read from `messages` only as far as needed."""
        source = iter(messages)
        while True:
            chunk = [Message.coerce(item) for item in islice(source, self.batch_size)]
            if not chunk:
                return
            yield Batch(chunk)

    def _request_headers(self, idempotency_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(self.extra_headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def _batch_body(self, batch: Batch, shortcode: str) -> bytes:
        if len(batch.messages) > self.batch_size:
            raise ValueError(f"a batch holds at most {self.batch_size} messages, this one has {len(batch.messages)}")
        return bulk_body(self.credentials, shortcode, batch.messages)

    @staticmethod
    def _batch_outcome(batch: Batch, doc: Mapping[str, Any], attempts: int) -> BatchOutcome:
        try:
            results = send_results(doc, len(batch.messages))
        except SmsgwError as exc:
            return BatchOutcome(batch, None, exc, attempts)
        return BatchOutcome(batch, results, None, attempts)

    # -- retries --------------------------------------------------------------------------------

    def _retry_delay(self, endpoint: str, attempt: int, reading: Attempt) -> float | None:
        """Seconds to wait before trying again, or None when the failure is final."""
        assert reading.error is not None
        if not reading.retryable or attempt >= self.retry.max_attempts:
            return None
        delay = self.retry.delay(attempt, reading.retry_after)
        event = RetryEvent(endpoint, attempt, self.retry.max_attempts, delay, reading.error)
        log.warning("%s attempt %d/%d failed (%s); next attempt in %.1f s", endpoint, attempt, self.retry.max_attempts, reading.error, delay)
        if self.on_retry is not None:
            self.on_retry(event)
        return delay


def raise_first_error(outcome: BatchOutcome, collected: list[Any]) -> None:
    assert outcome.error is not None
    outcome.error.results = collected
    raise outcome.error
