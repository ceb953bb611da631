"""Python client of the sendbulk API family: smsgw, and the providers that serve the same API.

    from smsgw.client import Client

    with Client("https://sms.example.com", "demo", API_KEY, shortcode="SMSGW") as sms:
        for result in sms.send_bulk([{"mobile": "0712345678", "message": "Hello"}]):
            print(result.code, result.message_id)

See docs/client.md. Request-level refusals raise a subclass of `SmsgwError`; per-message
outcomes are `SendResult`s.
"""

from .async_client import AsyncClient
from .errors import (
    DetailsNotFound,
    InvalidCredentials,
    InvalidMobileNumber,
    InvalidSenderId,
    LowCredit,
    MessageSystemError,
    NetworkNotAllowed,
    NoApiKey,
    NoDeliveryReport,
    NoPartnerId,
    ProtocolError,
    RateLimited,
    RecipientOptedOut,
    RequestSystemError,
    SmsgwError,
    TooManyContacts,
    TooManyMessages,
    TransportError,
    TryAgainLater,
    UnsupportedDataType,
    UnsupportedRequestType,
    error_for,
)
from .models import Balance, Batch, BatchOutcome, DeliveryReport, Message, OptOutAnswer, RetryEvent, SendResult
from .protocol import NO_RETRIES, RetryPolicy
from .sync import Client

__all__ = [
    "NO_RETRIES",
    "AsyncClient",
    "Balance",
    "Batch",
    "BatchOutcome",
    "Client",
    "DeliveryReport",
    "DetailsNotFound",
    "InvalidCredentials",
    "InvalidMobileNumber",
    "InvalidSenderId",
    "LowCredit",
    "Message",
    "MessageSystemError",
    "NetworkNotAllowed",
    "NoApiKey",
    "NoDeliveryReport",
    "NoPartnerId",
    "OptOutAnswer",
    "ProtocolError",
    "RateLimited",
    "RecipientOptedOut",
    "RequestSystemError",
    "RetryEvent",
    "RetryPolicy",
    "SendResult",
    "SmsgwError",
    "TooManyContacts",
    "TooManyMessages",
    "TransportError",
    "TryAgainLater",
    "UnsupportedDataType",
    "UnsupportedRequestType",
    "error_for",
]
