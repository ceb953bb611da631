"""Response codes of the partner API (spec/CONTRACT.md, "Response codes").

A description always starts with the fixed text of the table; detail may follow it.
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    SUCCESS = 200
    INVALID_SENDER_ID = 1001
    NETWORK_NOT_ALLOWED = 1002
    INVALID_MOBILE = 1003
    LOW_CREDIT = 1004
    MESSAGE_SYSTEM_ERROR = 1005
    INVALID_CREDENTIALS = 1006
    REQUEST_SYSTEM_ERROR = 1007
    NO_DELIVERY_REPORT = 1008
    UNSUPPORTED_DATA_TYPE = 1009
    UNSUPPORTED_REQUEST_TYPE = 1010
    RECIPIENT_OPTED_OUT = 1011
    TOO_MANY_MESSAGES = 1012
    TOO_MANY_CONTACTS = 1104
    TRY_AGAIN_LATER = 4090
    NO_PARTNER_ID = 4091
    NO_API_KEY = 4092
    DETAILS_NOT_FOUND = 4093


DESCRIPTIONS: dict[Code, str] = {
    Code.SUCCESS: "Success",
    Code.INVALID_SENDER_ID: "Invalid sender id",
    Code.NETWORK_NOT_ALLOWED: "Network not allowed",
    Code.INVALID_MOBILE: "Invalid mobile number",
    Code.LOW_CREDIT: "Low bulk credits",
    Code.MESSAGE_SYSTEM_ERROR: "Failed. System error",
    Code.INVALID_CREDENTIALS: "Invalid credentials",
    Code.REQUEST_SYSTEM_ERROR: "Failed. System error",
    Code.NO_DELIVERY_REPORT: "No Delivery Report",
    Code.UNSUPPORTED_DATA_TYPE: "Unsupported data type",
    Code.UNSUPPORTED_REQUEST_TYPE: "Unsupported request type",
    Code.RECIPIENT_OPTED_OUT: "Recipient opted out",
    Code.TOO_MANY_MESSAGES: "Too Many messages on SMS LIST",
    Code.TOO_MANY_CONTACTS: "Too many comma separated contacts",
    Code.TRY_AGAIN_LATER: "Internal Error. Try again after 5 minutes",
    Code.NO_PARTNER_ID: "No Partner ID is Set",
    Code.NO_API_KEY: "No API KEY Provided",
    Code.DETAILS_NOT_FOUND: "Details Not Found",
}


def describe(code: Code, detail: str | None = None) -> str:
    """The table's text for `code`, followed by `detail` when there is one."""
    text = DESCRIPTIONS[code]
    if detail:
        return f"{text}. {detail}"
    return text
