"""The wire format, without any I/O: request bodies, tolerant answer parsing, and the
decision whether a failed attempt is worth another.

Providers of this API family differ in small ways, and an answer is read in the most
forgiving way that still means one thing: `response-code` or the legacy `respose-code`,
codes and ids as JSON numbers or strings, `networkid` as a string, `credit` as a number.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from ..domain.codes import Code
from .errors import ProtocolError, RateLimited, SmsgwError, TransportError, error_for
from .models import Balance, DeliveryReport, Message, OptOutAnswer, SendResult

SERVICES_PATH = "/api/services"
# HTTP statuses that say "not now" rather than "no": a retry may succeed.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
RETRYABLE_CODES = frozenset({int(Code.TRY_AGAIN_LATER)})

_CODE_KEYS = ("response-code", "respose-code", "responseCode", "response_code")
_DESCRIPTION_KEYS = ("response-description", "respose-description", "responseDescription", "response_description")
_MESSAGE_ID_KEYS = ("messageid", "messageId", "messageID", "message-id", "message_id")
_NETWORK_ID_KEYS = ("networkid", "networkId", "networkID", "network-id", "network_id")


def service_url(base_url: str, endpoint: str) -> str:
    """`https://host` or `https://host/api/services` (with or without a slash) + endpoint."""
    base = base_url.rstrip("/")
    if not base.endswith(SERVICES_PATH):
        base += SERVICES_PATH
    return f"{base}/{endpoint}"


@dataclass(frozen=True)
class Credentials:
    partner_id: str
    api_key: str
    pass_type: str = "plain"  # or "bm5": the key goes base64-encoded

    def fields(self) -> dict[str, Any]:
        key = self.api_key
        if self.pass_type == "bm5":
            key = base64.b64encode(key.encode("utf-8")).decode("ascii")
        return {"partnerID": self.partner_id, "apikey": key, "pass_type": self.pass_type}

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return f"Credentials(partner_id={self.partner_id!r}, pass_type={self.pass_type!r})"


def bulk_body(credentials: Credentials, shortcode: str, messages: Sequence[Message]) -> bytes:
    """The sendbulk body. Credentials and shortcode go in every entry, as the source
    document's examples do: some providers read them per entry, smsgw from the first.
    The bytes are built once per request so that every retry sends the same body (the
    Idempotency-Key is only honoured for a byte-identical body)."""
    common = credentials.fields()
    common["shortcode"] = shortcode
    smslist = []
    for message in messages:
        entry = dict(common)
        if message.clientsmsid is not None:
            entry["clientsmsid"] = message.clientsmsid
        entry["mobile"] = message.mobile
        entry["message"] = message.message
        if message.time_to_send is not None:
            entry["timeToSend"] = message.time_to_send
        smslist.append(entry)
    return orjson.dumps({"count": len(smslist), "smslist": smslist})


def sms_body(credentials: Credentials, shortcode: str, message: Message) -> bytes:
    fields = credentials.fields()
    fields.update(shortcode=shortcode, mobile=message.mobile, message=message.message)
    if message.clientsmsid is not None:
        fields["clientsmsid"] = message.clientsmsid
    if message.time_to_send is not None:
        fields["timeToSend"] = message.time_to_send
    return orjson.dumps(fields)


def credentials_body(credentials: Credentials, **extra: Any) -> bytes:
    fields = credentials.fields()
    fields.update(extra)
    return orjson.dumps(fields)


def optout_check_body(credentials: Credentials, shortcode: str, numbers: Sequence[str | int]) -> bytes:
    """The body of smsgw's `checkoptout`: which of `numbers` would get 1011 from `shortcode`."""
    return credentials_body(credentials, shortcode=shortcode, mobile=list(numbers))


# -- reading answers ------------------------------------------------------------------------------


def _first(doc: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in doc:
            return doc[key]
    return None


def read_code(doc: Mapping[str, Any]) -> int | None:
    """The response code of an object, from either spelling, as a JSON number or string."""
    return _as_int(_first(doc, _CODE_KEYS))


def read_description(doc: Mapping[str, Any]) -> str:
    value = _first(doc, _DESCRIPTION_KEYS)
    return "" if value is None else str(value)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None


def _as_text(value: Any) -> str | None:
    """An id or number as text: "10000000", 10000000 and 10000000.0 all give "10000000"."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def parse_json(content: bytes) -> Any:
    # The standard library keeps integers of any size exact, which matters for ids that
    # other providers send as numbers.
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


_NOT_JSON = object()


@dataclass(frozen=True)
class Attempt:
    """The reading of one HTTP exchange: an answer document, or an error and whether
    another attempt may help (with the delay the provider asked for, if it did)."""

    document: Mapping[str, Any] | None = None
    error: SmsgwError | None = None
    retryable: bool = False
    retry_after: float | None = None


def read_response(status: int, content: bytes, headers: Mapping[str, str]) -> Attempt:
    """Classifies an HTTP answer. Protocol outcomes come with HTTP 200 and a code in the
    body; a non-200 status is an HTTP-level problem, whose body may still carry a code."""
    doc = parse_json(content)
    code = read_code(doc) if isinstance(doc, dict) else None
    description = read_description(doc) if isinstance(doc, dict) else ""
    if status in RETRYABLE_STATUSES:
        if code is not None:
            error = error_for(code, description, http_status=status)
        elif status == 429:
            error = RateLimited("HTTP 429 Too Many Requests", http_status=status)
        else:
            error = ProtocolError(f"HTTP {status} from the provider", http_status=status)
        return Attempt(error=error, retryable=True, retry_after=_retry_after(headers))
    if not 200 <= status < 300:
        if code is not None:
            return Attempt(error=error_for(code, description, http_status=status))
        return Attempt(error=ProtocolError(f"HTTP {status} without a response code", http_status=status))
    if doc is _NOT_JSON or not isinstance(doc, dict):
        snippet = content[:80].decode("utf-8", "replace")
        return Attempt(error=ProtocolError(f"the answer is not a JSON object: {snippet!r}", http_status=status))
    if "responses" not in doc and code is not None and code != 200:
        return Attempt(error=error_for(code, description, http_status=status), retryable=code in RETRYABLE_CODES)
    return Attempt(document=doc)


def transport_failure(exc: Exception, endpoint: str) -> Attempt:
    error = TransportError(f"{endpoint}: {type(exc).__name__}: {exc or 'no answer'}")
    error.__cause__ = exc
    return Attempt(error=error, retryable=True)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare for APIs; the backoff applies
    return max(0.0, seconds)


def send_results(doc: Mapping[str, Any], sent: int) -> list[SendResult]:
    """One SendResult per message of the request, in order."""
    entries = doc.get("responses")
    if isinstance(entries, dict):  # one provider answers a single entry without the list
        entries = [entries]
    if not isinstance(entries, list):
        raise ProtocolError(f"the answer has no 'responses' list (keys: {sorted(doc)[:8]})")
    if len(entries) != sent:
        # Results are matched to messages by position: with a different count no result can
        # be trusted to belong to its message.
        raise ProtocolError(f"{sent} messages sent but {len(entries)} results answered")
    return [send_result(entry) for entry in entries]


def send_result(entry: Any) -> SendResult:
    if not isinstance(entry, dict):
        raise ProtocolError(f"a result is not an object: {entry!r:.80}")
    code = read_code(entry)
    if code is None:
        raise ProtocolError(f"a result has no response code: {entry!r:.120}")
    return SendResult(
        code=code,
        description=read_description(entry),
        mobile=_as_text(entry.get("mobile")),
        message_id=_as_text(_first(entry, _MESSAGE_ID_KEYS)),
        network_id=_as_int(_first(entry, _NETWORK_ID_KEYS)),
        clientsmsid=entry.get("clientsmsid"),
    )


def balance_result(doc: Mapping[str, Any]) -> Balance:
    raw = doc.get("credit", doc.get("balance"))
    if raw is None or isinstance(raw, bool):
        raise ProtocolError(f"the balance answer has no credit (keys: {sorted(doc)[:8]})")
    try:
        # A float goes through its shortest repr: 545.1 stays 545.1, not 545.0999999...
        credit = Decimal(repr(raw) if isinstance(raw, float) else str(raw).strip().replace(",", ""))
    except InvalidOperation:
        raise ProtocolError(f"credit {raw!r} is not a number") from None
    partner = _first(doc, ("partner-id", "partnerID", "partner_id", "partnerId"))
    return Balance(credit, _as_text(partner))


def delivery_report_result(doc: Mapping[str, Any], asked_id: str) -> DeliveryReport:
    return DeliveryReport(
        message_id=_as_text(_first(doc, ("message-id",) + _MESSAGE_ID_KEYS)) or asked_id,
        status=_as_int(_first(doc, ("delivery-status", "deliveryStatus", "status"))),
        description=_as_text(_first(doc, ("delivery-description", "deliveryDescription", "description"))),
        tat=_as_text(_first(doc, ("delivery-tat", "deliveryTat", "tat"))),
        network_id=_as_int(_first(doc, ("delivery-networkid", "deliveryNetworkid", "networkid"))),
        time=_as_text(_first(doc, ("delivery-time", "deliveryTime", "timestamp"))),
        raw=dict(doc),
    )


def optout_check_result(doc: Mapping[str, Any]) -> OptOutAnswer:
    listed = doc.get("optedout")
    if not isinstance(listed, list):
        raise ProtocolError(f"the opt-out answer has no 'optedout' list (keys: {sorted(doc)[:8]})")
    opted_out = [text for text in (_as_text(number) for number in listed) if text is not None]
    promotional, footers = doc.get("promotional"), doc.get("footers")
    if not isinstance(promotional, bool) or not isinstance(footers, dict):
        return OptOutAnswer(opted_out)  # a gateway that does not say
    try:
        by_network = {int(network): str(footer) for network, footer in footers.items() if footer}
    except ValueError:
        raise ProtocolError(f"the opt-out answer's footers are not by network id: {sorted(footers)[:8]}") from None
    return OptOutAnswer(opted_out, promotional, by_network)


# -- retries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is tried again after 4090, HTTP 429/502/503/504
    or a connection failure or timeout. Every attempt of one request carries the same body
    and Idempotency-Key, so on smsgw a request that did arrive is answered from its first
    acceptance and never charged twice.

    The wait before attempt n+1 is "equal jitter": half of min(max_delay, base_delay ×
    2^(n-1)) plus a random part up to the other half, so that clients that failed together
    do not come back together; a Retry-After from the provider is honoured up to max_delay.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays cannot be negative")

    def delay(self, failed_attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2 ** (failed_attempt - 1)))
        jittered = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
        if retry_after is not None:
            return min(self.max_delay, max(jittered, retry_after))
        return jittered


NO_RETRIES = RetryPolicy(max_attempts=1)
