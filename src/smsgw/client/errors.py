"""Exceptions of the client: one class per request-level response code, all `SmsgwError`.

A request-level code is an answer about the whole request (credentials, sender id, the
request's shape, the provider being unavailable). Per-message outcomes (an invalid number,
low credit for one batch, ...) are never raised: they are `SendResult`s.
"""

from __future__ import annotations

from typing import Any

from ..domain.codes import DESCRIPTIONS, Code


class SmsgwError(Exception):
    """A request the provider refused or that could not be completed.

    `code` is the provider's response code (None when there was no usable answer: the
    connection failed, or the answer was not the API's JSON); `description` its text;
    `http_status` the HTTP status of the answer, when there was one; `attempts` how many
    times the request was tried. `results` holds the results that were obtained but not
    handed to the caller because of this error (see `Client.send_bulk`).
    """

    code: int | None = None

    def __init__(self, description: str, code: int | None = None, *, http_status: int | None = None) -> None:
        super().__init__(description)
        if code is not None:
            self.code = code
        self.description = description
        self.http_status = http_status
        self.attempts = 0
        self.results: list[Any] = []

    def __str__(self) -> str:
        if self.code is None:
            return self.description
        return f"{self.code} {self.description}"


class InvalidSenderId(SmsgwError):
    code = int(Code.INVALID_SENDER_ID)


class NetworkNotAllowed(SmsgwError):
    code = int(Code.NETWORK_NOT_ALLOWED)


class InvalidMobileNumber(SmsgwError):
    code = int(Code.INVALID_MOBILE)


class LowCredit(SmsgwError):
    code = int(Code.LOW_CREDIT)


class MessageSystemError(SmsgwError):
    code = int(Code.MESSAGE_SYSTEM_ERROR)


class InvalidCredentials(SmsgwError):
    code = int(Code.INVALID_CREDENTIALS)


class RequestSystemError(SmsgwError):
    code = int(Code.REQUEST_SYSTEM_ERROR)


class NoDeliveryReport(SmsgwError):
    code = int(Code.NO_DELIVERY_REPORT)


class UnsupportedDataType(SmsgwError):
    code = int(Code.UNSUPPORTED_DATA_TYPE)


class UnsupportedRequestType(SmsgwError):
    code = int(Code.UNSUPPORTED_REQUEST_TYPE)


class TooManyMessages(SmsgwError):
    code = int(Code.TOO_MANY_MESSAGES)


class TooManyContacts(SmsgwError):
    code = int(Code.TOO_MANY_CONTACTS)


class RecipientOptedOut(SmsgwError):
    """1011: the number opted out of this partner's messages; not charged, not sent."""

    code = int(Code.RECIPIENT_OPTED_OUT)


class TryAgainLater(SmsgwError):
    """4090: the provider could not accept anything now. Retried by the client; raised once
    the retries are spent."""

    code = int(Code.TRY_AGAIN_LATER)


class NoPartnerId(SmsgwError):
    code = int(Code.NO_PARTNER_ID)


class NoApiKey(SmsgwError):
    code = int(Code.NO_API_KEY)


class DetailsNotFound(SmsgwError):
    code = int(Code.DETAILS_NOT_FOUND)


class TransportError(SmsgwError):
    """No answer: the connection could not be made, broke, or timed out (after the retries).
    On smsgw a request may still have been accepted; the same Idempotency-Key replays it."""


class ProtocolError(SmsgwError):
    """An answer that is not the API's: not JSON, not an object, a result list whose length
    differs from the request's, or an HTTP error status without a code."""


class RateLimited(SmsgwError):
    """HTTP 429 without a code in the body, after the retries."""


_BY_CODE: dict[int, type[SmsgwError]] = {
    cls.code: cls
    for cls in (
        InvalidSenderId,
        NetworkNotAllowed,
        InvalidMobileNumber,
        LowCredit,
        MessageSystemError,
        InvalidCredentials,
        RequestSystemError,
        NoDeliveryReport,
        UnsupportedDataType,
        UnsupportedRequestType,
        TooManyMessages,
        TooManyContacts,
        RecipientOptedOut,
        TryAgainLater,
        NoPartnerId,
        NoApiKey,
        DetailsNotFound,
    )
}


def error_for(code: int, description: str | None = None, *, http_status: int | None = None) -> SmsgwError:
    """The typed exception for a request-level `code`; a plain SmsgwError for a code the
    table does not know (another provider's extension)."""
    cls = _BY_CODE.get(code)
    if description is None or not description.strip():
        try:
            description = DESCRIPTIONS[Code(code)]
        except ValueError:
            description = "Unknown response code"
    if cls is None:
        return SmsgwError(description, code, http_status=http_status)
    return cls(description, http_status=http_status)
