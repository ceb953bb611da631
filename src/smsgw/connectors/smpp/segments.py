"""One message -> the submit_sm parts that carry it.

The split itself is `smsgw.domain.encoding.split`, the same function that counts the parts
a partner pays for, so the price and the wire always agree. Long messages go out in one of
three shapes (a connector option):

- "udh" (default): each part starts with a 6-octet user data header (IEI 0x00, 8-bit
  reference) and has esm_class UDHI (0x40);
- "sar": each part carries the sar_msg_ref_num / sar_total_segments / sar_segment_seqnum
  TLVs and no header;
- "payload": one submit_sm with the whole text in message_payload and an empty
  short_message (the SMSC splits it; it answers with one message id).

GSM-7 text is written as unpacked septets (`encoding.encode`), data_coding 0; UCS-2 as
UTF-16BE, data_coding 8. A 153-septet GSM-7 part plus the 6-octet header is 159 octets,
which the SMSC packs into 160 septets on the air.

The concatenation reference should be stable across retries of one message (a handset that
received some parts of a first attempt can then still assemble the retry); `reference_for`
derives it from the gateway's message id, and consecutive ids never share a reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...domain.encoding import Encoding, encode, split
from ..base import Concatenation
from .pdu import (
    ESM_CLASS_UDHI,
    ESME_RINVMSGLEN,
    TLV_MESSAGE_PAYLOAD,
    TLV_SAR_MSG_REF_NUM,
    TLV_SAR_SEGMENT_SEQNUM,
    TLV_SAR_TOTAL_SEGMENTS,
    DeliverSm,
    PduError,
    SubmitSm,
)

CONCATENATION_MODES = ("udh", "sar", "payload")
UDH_IEI_CONCAT_8BIT = 0x00
UDH_IEI_CONCAT_16BIT = 0x08
MAX_PARTS = 255
MAX_SHORT_MESSAGE = 254
MAX_PAYLOAD = 0xFFFF


@dataclass(frozen=True)
class SubmitPart:
    text: str  # this part's text (for logs and tests)
    short_message: bytes
    esm_class: int
    data_coding: int
    tlvs: dict[int, bytes] = field(default_factory=dict)


def reference_for(message_id: int, concatenation: str = "udh") -> int:
    """The concatenation reference of a message: 8 bits for UDH, 16 bits for SAR."""
    return message_id % (0x100 if concatenation == "udh" else 0x10000)


def message_parts(text: str, encoding: Encoding, *, concatenation: str = "udh", reference: int = 0) -> list[SubmitPart]:
    """The parts `text` goes out as, in order. Raises PduError (ESME_RINVMSGLEN) for a text
    that no submit_sm sequence can carry (more than 255 parts, a payload over 64 KiB)."""
    if concatenation not in CONCATENATION_MODES:
        raise ValueError(f"concatenation must be one of {CONCATENATION_MODES}, not {concatenation!r}")
    data_coding = encoding.data_coding
    pieces = split(text, encoding)
    if len(pieces) == 1:
        return [SubmitPart(text, encode(text, encoding), 0, data_coding)]
    if concatenation == "payload":
        payload = encode(text, encoding)
        if len(payload) > MAX_PAYLOAD:
            raise PduError(f"message of {len(payload)} octets exceeds message_payload", ESME_RINVMSGLEN)
        return [SubmitPart(text, b"", 0, data_coding, {TLV_MESSAGE_PAYLOAD: payload})]
    total = len(pieces)
    if total > MAX_PARTS:
        raise PduError(f"message of {total} parts exceeds the {MAX_PARTS} parts concatenation allows", ESME_RINVMSGLEN)
    parts = []
    if concatenation == "udh":
        reference &= 0xFF
        for number, piece in enumerate(pieces, 1):
            header = bytes((5, UDH_IEI_CONCAT_8BIT, 3, reference, total, number))
            parts.append(SubmitPart(piece, header + encode(piece, encoding), ESM_CLASS_UDHI, data_coding))
    else:
        reference &= 0xFFFF
        for number, piece in enumerate(pieces, 1):
            tlvs = {
                TLV_SAR_MSG_REF_NUM: reference.to_bytes(2, "big"),
                TLV_SAR_TOTAL_SEGMENTS: bytes((total,)),
                TLV_SAR_SEGMENT_SEQNUM: bytes((number,)),
            }
            parts.append(SubmitPart(piece, encode(piece, encoding), 0, data_coding, tlvs))
    return parts


def split_udh(short_message: bytes, esm_class: int) -> tuple[bytes, bytes]:
    """(user data header, user data) of a short_message; no header unless UDHI is set or
    when the header length octet is impossible."""
    if not esm_class & ESM_CLASS_UDHI or not short_message:
        return b"", short_message
    end = short_message[0] + 1
    if end > len(short_message):
        return b"", short_message
    return short_message[:end], short_message[end:]


def concatenation_of(pdu: SubmitSm | DeliverSm) -> Concatenation | None:
    """Where a submit_sm/deliver_sm sits in a concatenated message (UDH IE 0x00/0x08 or SAR
    TLVs), or None for a single-part message or an unreadable header."""
    header, _ = split_udh(pdu.short_message, pdu.esm_class)
    position = 1
    while position + 1 < len(header):
        iei, length = header[position], header[position + 1]
        data = header[position + 2 : position + 2 + length]
        if iei == UDH_IEI_CONCAT_8BIT and length == 3 and len(data) == 3:
            return Concatenation(data[0], data[1], data[2])
        if iei == UDH_IEI_CONCAT_16BIT and length == 4 and len(data) == 4:
            return Concatenation(int.from_bytes(data[:2], "big"), data[2], data[3])
        position += 2 + length
    reference, total, number = pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum
    if reference is not None and total is not None and number is not None:
        return Concatenation(reference, total, number)
    return None
