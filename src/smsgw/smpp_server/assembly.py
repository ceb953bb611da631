"""submit_sm PDUs -> whole messages.

A message comes in one submit_sm (short_message, or the whole text in message_payload) or in
parts marked by a UDH concatenation header (8- or 16-bit reference) or the SAR TLVs. Parts are
held, unanswered, until the last one arrives; then the whole message is decided once and every
part answered alike, so that all parts of a message are accepted or refused together. The
bytes of the parts are joined before they are decoded, so a UCS-2 character split across two
parts (a surrogate pair) survives.

Held parts count against the bind's window (they are unanswered), which bounds the memory a
bind can hold here; a message whose parts stop coming is refused after `timeout`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..connectors.smpp.pdu import ESME_RINVMSGLEN, ESME_RINVPARLEN, ESME_RSUBMITFAIL, TLV_MESSAGE_PAYLOAD, SubmitSm
from ..connectors.smpp.segments import concatenation_of, split_udh
from ..domain.encoding import decode

# data_coding values the server reads: SMSC default alphabet (GSM-7, unpacked), IA5/ASCII,
# Latin-1, UCS-2.
SUPPORTED_DATA_CODINGS = frozenset({0, 1, 3, 8})


class Refused(Exception):
    """The PDU (or the message it belongs to) is refused with `status`, nothing accepted."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Whole:
    """A whole message and the submit_sm PDUs it came in (in arrival order)."""

    source: str
    destination: str
    text: str
    pdus: list[SubmitSm]


@dataclass
class _Partial:
    data_coding: int
    total: int
    started: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    pdus: list[SubmitSm] = field(default_factory=list)


class Assembler:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._partials: dict[tuple[str, str, int, int], _Partial] = {}

    @property
    def held(self) -> int:
        return sum(len(p.pdus) for p in self._partials.values())

    def add(self, pdu: SubmitSm, now: float | None = None) -> Whole | None:
        """The whole message once `pdu` completes one, None while parts are missing; Refused
        for a PDU that cannot be read (it alone is refused)."""
        data_coding = pdu.data_coding
        if data_coding not in SUPPORTED_DATA_CODINGS:
            raise Refused(ESME_RSUBMITFAIL, f"data_coding {data_coding} is not supported (0, 1, 3 or 8)")
        payload = pdu.tlvs.get(TLV_MESSAGE_PAYLOAD)
        if payload is not None:
            if pdu.short_message:
                raise Refused(ESME_RINVPARLEN, "short_message and message_payload both given")
            return Whole(pdu.source_addr, pdu.destination_addr, _text(payload, data_coding), [pdu])
        try:
            concatenation = concatenation_of(pdu)
        except (TypeError, ValueError):
            raise Refused(ESME_RINVPARLEN, "unreadable SAR parameters") from None
        _, data = split_udh(pdu.short_message, pdu.esm_class)
        if concatenation is None or concatenation.total == 1:
            return Whole(pdu.source_addr, pdu.destination_addr, _text(data, data_coding), [pdu])
        total, number = concatenation.total, concatenation.number
        if total == 0 or not 1 <= number <= total:
            raise Refused(ESME_RINVMSGLEN, f"part {number} of {total}")
        key = (pdu.source_addr, pdu.destination_addr, concatenation.reference, total)
        partial = self._partials.get(key)
        if partial is None:
            partial = self._partials[key] = _Partial(data_coding, total, time.monotonic() if now is None else now)
        if number in partial.pieces:
            raise Refused(ESME_RSUBMITFAIL, f"part {number} of {total} given twice")
        if data_coding != partial.data_coding:
            raise Refused(ESME_RSUBMITFAIL, "parts of one message in different data_coding")
        partial.pieces[number] = data
        partial.pdus.append(pdu)
        if len(partial.pieces) < total:
            return None
        del self._partials[key]
        joined = b"".join(partial.pieces[n] for n in range(1, total + 1))
        return Whole(pdu.source_addr, pdu.destination_addr, _text(joined, data_coding), partial.pdus)

    def expired(self, now: float | None = None) -> list[list[SubmitSm]]:
        """The held parts of messages that stayed incomplete past the timeout, forgotten now."""
        horizon = (time.monotonic() if now is None else now) - self.timeout
        late = [key for key, partial in self._partials.items() if partial.started < horizon]
        return [self._partials.pop(key).pdus for key in late]

    def drop_all(self) -> list[list[SubmitSm]]:
        held = [partial.pdus for partial in self._partials.values()]
        self._partials.clear()
        return held


def _text(data: bytes, data_coding: int) -> str:
    return decode(data, data_coding)
