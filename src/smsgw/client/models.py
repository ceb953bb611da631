"""What goes in and what comes out of the client: plain, typed values."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import SmsgwError

SUCCESS = 200


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a bulk send. `mobile` is sent as given (the provider normalises it);
    `clientsmsid` is your own id, echoed back in the result and in delivery reports;
    `time_to_send` is Unix seconds or "YYYY-MM-DD HH:MM[:SS]" in the provider's time zone."""

    mobile: str | int
    message: str
    clientsmsid: str | int | None = None
    time_to_send: str | int | None = None

    @classmethod
    def coerce(cls, item: Message | Mapping[str, Any] | Sequence[Any]) -> Message:
        """A Message from a Message, a mapping with the API's or this class's field names,
        or a (mobile, message) pair."""
        if isinstance(item, Message):
            return item
        if isinstance(item, Mapping):
            if "mobile" not in item or "message" not in item:
                raise TypeError(f"a message needs 'mobile' and 'message', got keys {sorted(item)}")
            when = item.get("time_to_send", item.get("timeToSend"))
            return cls(item["mobile"], item["message"], item.get("clientsmsid"), when)
        if isinstance(item, (tuple, list)) and len(item) == 2:
            return cls(item[0], item[1])
        raise TypeError(f"cannot make a message of {type(item).__name__}: give a Message, a mapping or a (mobile, message) pair")


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider's answer for one message, in the order the messages were given.

    `code` 200 means accepted (`message_id` is then set); any other code says why this
    message was refused (1003 invalid number, 1004 low credit, ...)."""

    code: int
    description: str
    mobile: str | None = None
    message_id: str | None = None
    network_id: int | None = None
    clientsmsid: Any = None

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS


@dataclass(frozen=True, slots=True)
class Balance:
    credit: Decimal
    partner_id: str | None = None


@dataclass(frozen=True, slots=True)
class OptOutAnswer:
    """smsgw's `checkoptout`: the numbers asked that are on the partner's opt-out list for the
    shortcode, as given, in their order; whether the shortcode is promotional, and the footer
    each network id appends to its messages then (both None: the gateway did not say)."""

    opted_out: list[str]
    promotional: bool | None = None
    footers: dict[int, str] | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """`status` and `description` follow the provider's table (smsgw: 1 Scheduled,
    2 SentToNetwork, 3 DeliveredToTerminal, 4 AbsentSubscriber, 5 DeliveryImpossible,
    6 SenderName Blacklisted, 7 Unknown). `raw` is the whole answer, for providers that
    add fields."""

    message_id: str
    status: int | None
    description: str | None
    tat: str | None = None
    network_id: int | None = None
    time: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def final(self) -> bool:
        """Whether the status will not change any more (smsgw's table: 3 and above)."""
        return self.status is not None and self.status >= 3


@dataclass(frozen=True, slots=True)
class Batch:
    """One sendbulk request: at most the provider's limit of messages (1000).

    `idempotency_key` is sent as the Idempotency-Key header on every attempt of this request
    (a fresh uuid4 when not given); `context` is carried to the outcome untouched."""

    messages: Sequence[Message]
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    context: Any = None


@dataclass(slots=True)
class BatchOutcome:
    """What became of one Batch: `results` (one per message, in order) or `error` (the
    request-level refusal or failure, after retries). An empty batch gets an empty result
    list without a request."""

    batch: Batch
    results: list[SendResult] | None
    error: SmsgwError | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Passed to `on_retry` before the client waits and tries a request again."""

    endpoint: str
    attempt: int  # the attempt that just failed, from 1
    max_attempts: int
    delay: float  # seconds until the next attempt
    error: SmsgwError
