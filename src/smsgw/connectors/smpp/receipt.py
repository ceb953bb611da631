"""Delivery receipts: parsing the SMSC's text and TLVs, and matching SMSC message ids.

The de-facto receipt text (SMPP 3.4 Appendix B) is

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...

SMSCs deviate from it in every way seen in the wild, so the parser accepts the keys in any
order and any letter case, `submit_date` for `submit date`, missing fields, dates with or
without seconds, and a `text:` that itself contains `key:` pairs (a key already seen is part
of the value before it, not a new field). When the PDU carries the `receipted_message_id`
and `message_state` TLVs, they win over the text.

SMSC message ids are compared through `smsc_id_keys` (see there): carriers are known to
return an id in hex in submit_sm_resp and in decimal in the receipt, or zero-padded, or in
another letter case.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

from ...domain.encoding import decode
from ...domain.states import DeliveryState
from ..base import Receipt, smsc_id_keys
from .pdu import DataSm, DeliverSm

__all__ = [
    "MESSAGE_STATE_STATS",
    "STAT_MESSAGE_STATES",
    "STAT_STATES",
    "Receipt",
    "format_receipt_text",
    "normal_stat",
    "parse_receipt",
    "parse_receipt_date",
    "parse_receipt_text",
    "printable",
    "receipt_text_of",
    "smsc_id_keys",
    "smsc_ids_match",
    "state_of_stat",
]

# Standard seven-letter stat values (and the long spellings some SMSCs write) -> standard.
_STAT_SPELLINGS = {
    "DELIVRD": "DELIVRD",
    "DELIVERED": "DELIVRD",
    "EXPIRED": "EXPIRED",
    "DELETED": "DELETED",
    "UNDELIV": "UNDELIV",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "ACCEPTD": "ACCEPTD",
    "ACCEPTED": "ACCEPTD",
    "UNKNOWN": "UNKNOWN",
    "REJECTD": "REJECTD",
    "REJECTED": "REJECTD",
    "ENROUTE": "ENROUTE",
    # The subscriber blocked the sender (opted out at the network, e.g. Safaricom's
    # *456*9*5#): reported as `SenderName Blacklisted`, and the number goes on the opt-out list.
    "BLACKLST": "BLACKLST",
    "BLACKLIST": "BLACKLST",
    "BLACKLISTED": "BLACKLST",
}

STAT_STATES: dict[str, DeliveryState] = {
    "DELIVRD": DeliveryState.DELIVERED,
    "EXPIRED": DeliveryState.ABSENT_SUBSCRIBER,
    "DELETED": DeliveryState.DELIVERY_IMPOSSIBLE,
    "UNDELIV": DeliveryState.DELIVERY_IMPOSSIBLE,
    "ACCEPTD": DeliveryState.DELIVERED,
    "UNKNOWN": DeliveryState.UNKNOWN,
    "REJECTD": DeliveryState.DELIVERY_IMPOSSIBLE,
    "BLACKLST": DeliveryState.SENDER_BLACKLISTED,
    # Not final: the SMSC still tries.
    "ENROUTE": DeliveryState.SENT_TO_NETWORK,
}
# message_state TLV values that say no more than "not delivered": a blacklisted stat in the
# text is the more precise word then.
_UNSPECIFIC_STATES = (5, 7, 8)

# message_state TLV values (SMPP 3.4, 5.2.28) -> stat text.
MESSAGE_STATE_STATS = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
STAT_MESSAGE_STATES = {stat: value for value, stat in MESSAGE_STATE_STATS.items()}

_KEY = re.compile(
    r"(?<![A-Za-z0-9])(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)[ \t]*:",
    re.IGNORECASE,
)


def parse_receipt_text(text: str) -> dict[str, str]:
    """The receipt's `key: value` pairs, keys lower case with a space ('submit date').

    Values are the first word after the key, except `text`, which runs to the next key.
    """
    found: list[tuple[str, int, int]] = []  # key, start of key, start of value
    seen: set[str] = set()
    for match in _KEY.finditer(text):
        key = _normal_key(match.group(1))
        if key in seen:
            continue
        seen.add(key)
        found.append((key, match.start(), match.end()))
    fields: dict[str, str] = {}
    for index, (key, _start, value_start) in enumerate(found):
        value_end = found[index + 1][1] if index + 1 < len(found) else len(text)
        value = text[value_start:value_end].strip()
        if key != "text":
            value = value.split(None, 1)[0] if value else ""
        fields[key] = value
    return fields


def _normal_key(key: str) -> str:
    key = key.lower()
    if key.startswith("submit"):
        return "submit date"
    if key.startswith("done"):
        return "done date"
    return key


def normal_stat(stat: str) -> str:
    """'delivered' -> 'DELIVRD'; an unknown value comes back upper case."""
    upper = stat.strip().upper()
    return _STAT_SPELLINGS.get(upper, upper)


def state_of_stat(stat: str) -> DeliveryState:
    """The DeliveryState a stat value reports (anything unrecognised: UNKNOWN)."""
    return STAT_STATES.get(normal_stat(stat), DeliveryState.UNKNOWN)


def parse_receipt_date(value: str | None, tz: tzinfo = UTC) -> float | None:
    """YYMMDDhhmm or YYMMDDhhmmss in `tz` -> unix seconds; None when unreadable."""
    if not value or not value.isascii() or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        moment = datetime(
            2000 + int(value[0:2]),
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12]) if len(value) == 12 else 0,
            tzinfo=tz,
        )
    except ValueError:
        return None
    return moment.timestamp()


def receipt_text_of(pdu: DeliverSm | DataSm) -> str:
    """The receipt's text. Receipt texts are ASCII by convention whatever data_coding says
    (a GSM-7 reading would turn '_' or '@' in ids into other characters), so everything but
    UCS-2 is read as Latin-1 (SMPP data_coding 3)."""
    return decode(pdu.content, 8 if pdu.data_coding == 8 else 3)


# NUL and the other C0 controls: a C string's terminator left in the text, or noise. They
# mean nothing in an id, stat or error, and PostgreSQL refuses NUL in text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(value: str) -> str:
    """A peer's string without control characters, safe to store and compare."""
    return _CONTROL.sub("", value)


def parse_receipt(pdu: DeliverSm | DataSm, tz: tzinfo = UTC) -> Receipt | None:
    """The receipt a deliver_sm/data_sm carries, or None when it names no message id."""
    text = printable(receipt_text_of(pdu))
    fields = parse_receipt_text(text)
    smsc_id = printable(pdu.receipted_message_id or "").strip() or fields.get("id", "")
    if not smsc_id:
        return None
    message_state = pdu.message_state
    text_stat = normal_stat(fields.get("stat", ""))
    if message_state in MESSAGE_STATE_STATS and not (text_stat == "BLACKLST" and message_state in _UNSPECIFIC_STATES):
        stat = MESSAGE_STATE_STATS[message_state]
    else:
        stat = text_stat
    error = fields.get("err") or None
    if error is None and pdu.network_error_code is not None:
        network_type, code = pdu.network_error_code
        error = f"{network_type}/{code}"
    return Receipt(
        smsc_message_id=smsc_id,
        state=STAT_STATES.get(stat, DeliveryState.UNKNOWN),
        stat=stat,
        error=error,
        done_at=parse_receipt_date(fields.get("done date"), tz),
        source=pdu.source_addr,
        destination=pdu.destination_addr,
        raw_text=text,
    )


def format_receipt_text(
    message_id: str,
    stat: str,
    *,
    submitted_at: float,
    done_at: float,
    err: str = "000",
    text: str = "",
    sub: int = 1,
) -> str:
    """A receipt text in the standard layout (dates in UTC, to the minute)."""
    dlvrd = sub if stat in ("DELIVRD", "ACCEPTD") else 0
    submit_date = datetime.fromtimestamp(submitted_at, UTC).strftime("%y%m%d%H%M")
    done_date = datetime.fromtimestamp(done_at, UTC).strftime("%y%m%d%H%M")
    return f"id:{message_id} sub:{sub:03d} dlvrd:{dlvrd:03d} submit date:{submit_date} done date:{done_date} stat:{stat} err:{err} text:{text[:20]}"


# --- message id matching --------------------------------------------------------------------


def smsc_ids_match(first: str, second: str) -> bool:
    """Whether two SMSC message ids denote the same message under `smsc_id_keys`."""
    return not set(smsc_id_keys(first)).isdisjoint(smsc_id_keys(second))
