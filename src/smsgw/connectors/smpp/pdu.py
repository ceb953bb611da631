"""SMPP 3.4 PDU codec: the PDUs an ESME and a small SMSC need, and a frame reader.

Every PDU is a dataclass with the four header fields (`command_status`, `sequence_number`;
`command_id` is a class constant, `command_length` is computed) and its mandatory body
fields, followed by optional parameters (TLVs) kept as an ordered dict tag -> raw bytes.
Typed accessors exist for the TLVs smsgw reads or writes (SAR, message_payload, receipt
fields, user_message_reference).

Decoding trusts nothing: whatever a peer sends, `decode_pdu` either returns a PDU or raises
`PduError`, whose `status` is the command_status to answer with (in generic_nack or the
command's own response). `read_pdu` reads exactly one frame from a stream and refuses
command_length values below the header size or above `max_length` before reading any body,
so a garbled length can neither make us allocate gigabytes nor consume the next frame.

C-octet strings are str, their bytes read and written as Latin-1 so that any byte sequence a
peer sends survives a decode/encode round trip; each field's maximum length (terminating NUL
included, as the specification counts) is enforced both ways, with the status the
specification assigns to that field (e.g. ESME_RINVSRCADR for source_addr).

Responses to which the specification allows an absent body on error (bind_*_resp,
submit_sm_resp, data_sm_resp) decode an empty body as default values, and are encoded
without body when their status is non-zero and their fields are empty.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

# --- command_status -------------------------------------------------------------------------

ESME_ROK = 0x00000000
ESME_RINVMSGLEN = 0x00000001
ESME_RINVCMDLEN = 0x00000002
ESME_RINVCMDID = 0x00000003
ESME_RINVBNDSTS = 0x00000004
ESME_RALYBND = 0x00000005
ESME_RINVPRTFLG = 0x00000006
ESME_RINVREGDLVFLG = 0x00000007
ESME_RSYSERR = 0x00000008
ESME_RINVSRCADR = 0x0000000A
ESME_RINVDSTADR = 0x0000000B
ESME_RINVMSGID = 0x0000000C
ESME_RBINDFAIL = 0x0000000D
ESME_RINVPASWD = 0x0000000E
ESME_RINVSYSID = 0x0000000F
ESME_RCANCELFAIL = 0x00000011
ESME_RREPLACEFAIL = 0x00000013
ESME_RMSGQFUL = 0x00000014
ESME_RINVSERTYP = 0x00000015
ESME_RINVNUMDESTS = 0x00000033
ESME_RINVDLNAME = 0x00000034
ESME_RINVDESTFLAG = 0x00000040
ESME_RINVSUBREP = 0x00000042
ESME_RINVESMCLASS = 0x00000043
ESME_RCNTSUBDL = 0x00000044
ESME_RSUBMITFAIL = 0x00000045
ESME_RINVSRCTON = 0x00000048
ESME_RINVSRCNPI = 0x00000049
ESME_RINVDSTTON = 0x00000050
ESME_RINVDSTNPI = 0x00000051
ESME_RINVSYSTYP = 0x00000053
ESME_RINVREPFLAG = 0x00000054
ESME_RINVNUMMSGS = 0x00000055
ESME_RTHROTTLED = 0x00000058
ESME_RINVSCHED = 0x00000061
ESME_RINVEXPIRY = 0x00000062
ESME_RINVDFTMSGID = 0x00000063
ESME_RX_T_APPN = 0x00000064
ESME_RX_P_APPN = 0x00000065
ESME_RX_R_APPN = 0x00000066
ESME_RQUERYFAIL = 0x00000067
ESME_RINVOPTPARSTREAM = 0x000000C0
ESME_ROPTPARNOTALLWD = 0x000000C1
ESME_RINVPARLEN = 0x000000C2
ESME_RMISSINGOPTPARAM = 0x000000C3
ESME_RINVOPTPARAMVAL = 0x000000C4
ESME_RDELIVERYFAILURE = 0x000000FE
ESME_RUNKNOWNERR = 0x000000FF

STATUS_NAMES: dict[int, str] = {value: name for name, value in globals().items() if name.startswith("ESME_") and isinstance(value, int)}


def status_name(status: int) -> str:
    """'ESME_RTHROTTLED (0x58)' for logs and error details."""
    return f"{STATUS_NAMES.get(status, 'unknown status')} (0x{status:X})"


# --- command_id -----------------------------------------------------------------------------

GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_RECEIVER_RESP = 0x80000001
BIND_TRANSMITTER = 0x00000002
BIND_TRANSMITTER_RESP = 0x80000002
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
OUTBIND = 0x0000000B
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
DATA_SM = 0x00000103
DATA_SM_RESP = 0x80000103

RESPONSE_BIT = 0x80000000

# --- optional parameter tags ----------------------------------------------------------------

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_USER_MESSAGE_REFERENCE = 0x0204
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_SC_INTERFACE_VERSION = 0x0210
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427

# esm_class bits (SMPP 3.4, 5.2.12)
ESM_CLASS_TYPE_MASK = 0x3C
ESM_CLASS_DELIVERY_RECEIPT = 0x04
ESM_CLASS_INTERMEDIATE_NOTIFICATION = 0x20
ESM_CLASS_UDHI = 0x40

INTERFACE_VERSION_34 = 0x34
HEADER_LENGTH = 16
# message_payload may carry up to 64 KiB; anything much longer is not an SMPP frame.
DEFAULT_MAX_PDU_LENGTH = 70_000

_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_BYTES = [bytes((value,)) for value in range(256)]


class PduError(ValueError):
    """A PDU that cannot be decoded (or encoded).

    `status` is the command_status to answer the peer with; `command_id` and
    `sequence_number` are those of the offending PDU when its header could be read (a
    generic_nack echoes the sequence number). `fatal` means the stream has lost its framing
    and the connection must be closed after answering.
    """

    def __init__(
        self,
        message: str,
        status: int = ESME_RSYSERR,
        *,
        command_id: int | None = None,
        sequence_number: int = 0,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.fatal = fatal


# --- body schema ----------------------------------------------------------------------------

# Kinds of mandatory body fields.
CSTRING = 0  # C-octet string, NUL-terminated, bounded
OCTET = 1  # one unsigned octet
OCTET_STRING = 2  # a length octet, then that many octets (short_message)


@dataclass(frozen=True, slots=True)
class BodyField:
    name: str
    kind: int
    size: int = 1  # C-octet strings: maximum length counting the terminating NUL
    status: int = ESME_RINVPARLEN  # answer when this field is out of bounds


def _cstr(name: str, size: int, status: int = ESME_RINVPARLEN) -> BodyField:
    return BodyField(name, CSTRING, size, status)


def _u8(name: str, status: int = ESME_RINVPARLEN) -> BodyField:
    return BodyField(name, OCTET, 1, status)


_BIND_BODY = (
    _cstr("system_id", 16, ESME_RINVSYSID),
    _cstr("password", 9, ESME_RINVPASWD),
    _cstr("system_type", 13, ESME_RINVSYSTYP),
    _u8("interface_version"),
    _u8("addr_ton"),
    _u8("addr_npi"),
    _cstr("address_range", 41),
)
_BIND_RESP_BODY = (_cstr("system_id", 16, ESME_RINVSYSID),)
_MESSAGE_ID_BODY = (_cstr("message_id", 65, ESME_RINVMSGID),)
_SHORT_MESSAGE_BODY = (
    _cstr("service_type", 6, ESME_RINVSERTYP),
    _u8("source_addr_ton", ESME_RINVSRCTON),
    _u8("source_addr_npi", ESME_RINVSRCNPI),
    _cstr("source_addr", 21, ESME_RINVSRCADR),
    _u8("dest_addr_ton", ESME_RINVDSTTON),
    _u8("dest_addr_npi", ESME_RINVDSTNPI),
    _cstr("destination_addr", 21, ESME_RINVDSTADR),
    _u8("esm_class", ESME_RINVESMCLASS),
    _u8("protocol_id"),
    _u8("priority_flag", ESME_RINVPRTFLG),
    _cstr("schedule_delivery_time", 17, ESME_RINVSCHED),
    _cstr("validity_period", 17, ESME_RINVEXPIRY),
    _u8("registered_delivery", ESME_RINVREGDLVFLG),
    _u8("replace_if_present_flag", ESME_RINVREPFLAG),
    _u8("data_coding"),
    _u8("sm_default_msg_id", ESME_RINVDFTMSGID),
    BodyField("short_message", OCTET_STRING, 254, ESME_RINVMSGLEN),
)
_DATA_SM_BODY = (
    _cstr("service_type", 6, ESME_RINVSERTYP),
    _u8("source_addr_ton", ESME_RINVSRCTON),
    _u8("source_addr_npi", ESME_RINVSRCNPI),
    _cstr("source_addr", 65, ESME_RINVSRCADR),
    _u8("dest_addr_ton", ESME_RINVDSTTON),
    _u8("dest_addr_npi", ESME_RINVDSTNPI),
    _cstr("destination_addr", 65, ESME_RINVDSTADR),
    _u8("esm_class", ESME_RINVESMCLASS),
    _u8("registered_delivery", ESME_RINVREGDLVFLG),
    _u8("data_coding"),
)
_OUTBIND_BODY = (_cstr("system_id", 16, ESME_RINVSYSID), _cstr("password", 9, ESME_RINVPASWD))


def _int_tlv(tag: int, size: int, doc: str) -> property:
    def get(self: Any) -> int | None:
        value = self.tlvs.get(tag)
        # Peers pad or shorten integer TLVs; any 1..4 byte big-endian value is read.
        if not value or len(value) > 4:
            return None
        return int.from_bytes(value, "big")

    def set_(self: Any, value: int | None) -> None:
        if value is None:
            self.tlvs.pop(tag, None)
            return
        try:
            self.tlvs[tag] = value.to_bytes(size, "big")
        except OverflowError:
            raise PduError(f"TLV 0x{tag:04X} value {value} does not fit {size} octets", ESME_RINVOPTPARAMVAL) from None

    return property(get, set_, doc=doc)


class _Tlvs:
    """Typed accessors over `self.tlvs` (absent or unreadable -> None; None removes)."""

    __slots__ = ()
    tlvs: dict[int, bytes]

    sar_msg_ref_num = _int_tlv(TLV_SAR_MSG_REF_NUM, 2, "Reference shared by the parts of one message.")
    sar_total_segments = _int_tlv(TLV_SAR_TOTAL_SEGMENTS, 1, "Number of parts of the message.")
    sar_segment_seqnum = _int_tlv(TLV_SAR_SEGMENT_SEQNUM, 1, "1-based position of this part.")
    message_state = _int_tlv(TLV_MESSAGE_STATE, 1, "Final state in a delivery receipt (MESSAGE_STATE_*).")
    user_message_reference = _int_tlv(TLV_USER_MESSAGE_REFERENCE, 2, "ESME's own reference for the message.")

    @property
    def message_payload(self) -> bytes | None:
        return self.tlvs.get(TLV_MESSAGE_PAYLOAD)

    @message_payload.setter
    def message_payload(self, value: bytes | None) -> None:
        if value is None:
            self.tlvs.pop(TLV_MESSAGE_PAYLOAD, None)
        elif len(value) > 0xFFFF:
            raise PduError("message_payload over 65535 octets", ESME_RINVPARLEN)
        else:
            self.tlvs[TLV_MESSAGE_PAYLOAD] = bytes(value)

    @property
    def receipted_message_id(self) -> str | None:
        value = self.tlvs.get(TLV_RECEIPTED_MESSAGE_ID)
        if value is None:
            return None
        # A C-octet string by the specification; some SMSCs omit the NUL or pad with several.
        return value.split(b"\0", 1)[0].decode("latin-1")

    @receipted_message_id.setter
    def receipted_message_id(self, value: str | None) -> None:
        if value is None:
            self.tlvs.pop(TLV_RECEIPTED_MESSAGE_ID, None)
            return
        raw = _latin1(value, "receipted_message_id", 65, ESME_RINVOPTPARAMVAL)
        self.tlvs[TLV_RECEIPTED_MESSAGE_ID] = raw + b"\0"

    @property
    def network_error_code(self) -> tuple[int, int] | None:
        """(network type, error code): 3 octets by the specification."""
        value = self.tlvs.get(TLV_NETWORK_ERROR_CODE)
        if value is None or len(value) != 3:
            return None
        return value[0], int.from_bytes(value[1:], "big")

    @network_error_code.setter
    def network_error_code(self, value: tuple[int, int] | None) -> None:
        if value is None:
            self.tlvs.pop(TLV_NETWORK_ERROR_CODE, None)
            return
        network_type, code = value
        if not (0 <= network_type <= 0xFF and 0 <= code <= 0xFFFF):
            raise PduError(f"network_error_code {value} out of range", ESME_RINVOPTPARAMVAL)
        self.tlvs[TLV_NETWORK_ERROR_CODE] = bytes((network_type,)) + code.to_bytes(2, "big")


def _latin1(value: str, name: str, size: int, status: int) -> bytes:
    try:
        raw = value.encode("latin-1")
    except (UnicodeEncodeError, AttributeError):
        raise PduError(f"{name} {value!r} is not a Latin-1 string", status) from None
    if len(raw) >= size or b"\0" in raw:
        raise PduError(f"{name} {value!r} is longer than {size - 1} octets or holds a NUL", status)
    return raw


# --- PDU classes ----------------------------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class Pdu:
    command_id: ClassVar[int] = -1
    body: ClassVar[tuple[BodyField, ...]] = ()
    # Responses that may come without body when command_status is not ESME_ROK.
    body_optional: ClassVar[bool] = False
    response_class: ClassVar[type[Pdu] | None] = None

    sequence_number: int = 0
    command_status: int = 0

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def name(self) -> str:
        return _NAMES[self.command_id]

    def encode(self) -> bytes:
        return encode_pdu(self)


@dataclass(kw_only=True, slots=True)
class _WithTlvs(_Tlvs, Pdu):
    tlvs: dict[int, bytes] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = GENERIC_NACK


@dataclass(kw_only=True, slots=True)
class _Bind(_WithTlvs):
    body: ClassVar[tuple[BodyField, ...]] = _BIND_BODY
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(kw_only=True, slots=True)
class _BindResp(_WithTlvs):
    body: ClassVar[tuple[BodyField, ...]] = _BIND_RESP_BODY
    body_optional: ClassVar[bool] = True
    system_id: str = ""

    @property
    def sc_interface_version(self) -> int | None:
        value = self.tlvs.get(TLV_SC_INTERFACE_VERSION)
        return value[0] if value and len(value) == 1 else None


@dataclass(kw_only=True, slots=True)
class BindTransmitterResp(_BindResp):
    command_id: ClassVar[int] = BIND_TRANSMITTER_RESP


@dataclass(kw_only=True, slots=True)
class BindReceiverResp(_BindResp):
    command_id: ClassVar[int] = BIND_RECEIVER_RESP


@dataclass(kw_only=True, slots=True)
class BindTransceiverResp(_BindResp):
    command_id: ClassVar[int] = BIND_TRANSCEIVER_RESP


@dataclass(kw_only=True, slots=True)
class BindTransmitter(_Bind):
    command_id: ClassVar[int] = BIND_TRANSMITTER
    response_class: ClassVar[type[Pdu] | None] = BindTransmitterResp
    can_transmit: ClassVar[bool] = True
    can_receive: ClassVar[bool] = False


@dataclass(kw_only=True, slots=True)
class BindReceiver(_Bind):
    command_id: ClassVar[int] = BIND_RECEIVER
    response_class: ClassVar[type[Pdu] | None] = BindReceiverResp
    can_transmit: ClassVar[bool] = False
    can_receive: ClassVar[bool] = True


@dataclass(kw_only=True, slots=True)
class BindTransceiver(_Bind):
    command_id: ClassVar[int] = BIND_TRANSCEIVER
    response_class: ClassVar[type[Pdu] | None] = BindTransceiverResp
    can_transmit: ClassVar[bool] = True
    can_receive: ClassVar[bool] = True


@dataclass(kw_only=True, slots=True)
class Outbind(_WithTlvs):
    command_id: ClassVar[int] = OUTBIND
    body: ClassVar[tuple[BodyField, ...]] = _OUTBIND_BODY
    system_id: str = ""
    password: str = ""


@dataclass(kw_only=True, slots=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = UNBIND_RESP


@dataclass(kw_only=True, slots=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = UNBIND
    response_class: ClassVar[type[Pdu] | None] = UnbindResp


@dataclass(kw_only=True, slots=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = ENQUIRE_LINK_RESP


@dataclass(kw_only=True, slots=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = ENQUIRE_LINK
    response_class: ClassVar[type[Pdu] | None] = EnquireLinkResp


@dataclass(kw_only=True, slots=True)
class _MessageIdResp(_WithTlvs):
    body: ClassVar[tuple[BodyField, ...]] = _MESSAGE_ID_BODY
    body_optional: ClassVar[bool] = True
    message_id: str = ""


@dataclass(kw_only=True, slots=True)
class SubmitSmResp(_MessageIdResp):
    command_id: ClassVar[int] = SUBMIT_SM_RESP


@dataclass(kw_only=True, slots=True)
class DeliverSmResp(_MessageIdResp):
    command_id: ClassVar[int] = DELIVER_SM_RESP


@dataclass(kw_only=True, slots=True)
class DataSmResp(_MessageIdResp):
    command_id: ClassVar[int] = DATA_SM_RESP


@dataclass(kw_only=True, slots=True)
class _ShortMessage(_WithTlvs):
    body: ClassVar[tuple[BodyField, ...]] = _SHORT_MESSAGE_BODY
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""

    @property
    def is_receipt(self) -> bool:
        return is_receipt_esm_class(self.esm_class)

    @property
    def content(self) -> bytes:
        """The message bytes: message_payload when present, else short_message."""
        payload = self.tlvs.get(TLV_MESSAGE_PAYLOAD)
        return payload if payload is not None else self.short_message


@dataclass(kw_only=True, slots=True)
class SubmitSm(_ShortMessage):
    command_id: ClassVar[int] = SUBMIT_SM
    response_class: ClassVar[type[Pdu] | None] = SubmitSmResp


@dataclass(kw_only=True, slots=True)
class DeliverSm(_ShortMessage):
    command_id: ClassVar[int] = DELIVER_SM
    response_class: ClassVar[type[Pdu] | None] = DeliverSmResp


@dataclass(kw_only=True, slots=True)
class DataSm(_WithTlvs):
    command_id: ClassVar[int] = DATA_SM
    response_class: ClassVar[type[Pdu] | None] = DataSmResp
    body: ClassVar[tuple[BodyField, ...]] = _DATA_SM_BODY
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0

    @property
    def is_receipt(self) -> bool:
        return is_receipt_esm_class(self.esm_class)

    @property
    def content(self) -> bytes:
        return self.tlvs.get(TLV_MESSAGE_PAYLOAD, b"")


PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        EnquireLink,
        EnquireLinkResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        DataSm,
        DataSmResp,
    )
}

_NAMES = {
    GENERIC_NACK: "generic_nack",
    BIND_TRANSMITTER: "bind_transmitter",
    BIND_TRANSMITTER_RESP: "bind_transmitter_resp",
    BIND_RECEIVER: "bind_receiver",
    BIND_RECEIVER_RESP: "bind_receiver_resp",
    BIND_TRANSCEIVER: "bind_transceiver",
    BIND_TRANSCEIVER_RESP: "bind_transceiver_resp",
    OUTBIND: "outbind",
    UNBIND: "unbind",
    UNBIND_RESP: "unbind_resp",
    ENQUIRE_LINK: "enquire_link",
    ENQUIRE_LINK_RESP: "enquire_link_resp",
    SUBMIT_SM: "submit_sm",
    SUBMIT_SM_RESP: "submit_sm_resp",
    DELIVER_SM: "deliver_sm",
    DELIVER_SM_RESP: "deliver_sm_resp",
    DATA_SM: "data_sm",
    DATA_SM_RESP: "data_sm_resp",
}


def is_receipt_esm_class(esm_class: int) -> bool:
    """An SMSC delivery receipt or intermediate notification (not a mobile-originated SM)."""
    return (esm_class & ESM_CLASS_TYPE_MASK) in (ESM_CLASS_DELIVERY_RECEIPT, ESM_CLASS_INTERMEDIATE_NOTIFICATION)


def response_to(request: Pdu, status: int = ESME_ROK, **fields: Any) -> Pdu:
    """The response a peer expects for `request` (generic_nack if it has no response PDU)."""
    cls = request.response_class
    if cls is None:
        return GenericNack(sequence_number=request.sequence_number, command_status=status or ESME_RINVCMDID)
    return cls(sequence_number=request.sequence_number, command_status=status, **fields)


# --- encoding -------------------------------------------------------------------------------


def encode_pdu(pdu: Pdu) -> bytes:
    """The wire bytes of `pdu`; raises PduError for values the format cannot carry."""
    cls = type(pdu)
    body = _encode_body(pdu, cls) if cls.body else b""
    if cls.body_optional and pdu.command_status != ESME_ROK and _is_empty(pdu, cls):
        body = b""
    try:
        return _HEADER.pack(HEADER_LENGTH + len(body), cls.command_id, pdu.command_status, pdu.sequence_number) + body
    except struct.error:
        raise PduError(
            f"{cls.__name__}: command_status {pdu.command_status!r} or sequence_number {pdu.sequence_number!r} is not a 32-bit unsigned integer",
            ESME_RSYSERR,
        ) from None


def _is_empty(pdu: Pdu, cls: type[Pdu]) -> bool:
    return not getattr(pdu, "tlvs", None) and all(getattr(pdu, f.name) in ("", 0, b"") for f in cls.body)


def _encode_body(pdu: Any, cls: type[Pdu]) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    for spec in cls.body:
        value = getattr(pdu, spec.name)
        if spec.kind == CSTRING:
            append(_latin1(value, spec.name, spec.size, spec.status))
            append(b"\0")
        elif spec.kind == OCTET:
            if type(value) is not int or not 0 <= value <= 0xFF:
                raise PduError(f"{spec.name} {value!r} is not an octet", spec.status)
            append(_BYTES[value])
        else:
            if not isinstance(value, (bytes, bytearray)) or len(value) > spec.size:
                raise PduError(f"{spec.name} must be at most {spec.size} octets", spec.status)
            append(_BYTES[len(value)])
            append(bytes(value))
    for tag, value in pdu.tlvs.items():
        if type(tag) is not int or not 0 <= tag <= 0xFFFF:
            raise PduError(f"TLV tag {tag!r} is not a 16-bit integer", ESME_RINVOPTPARSTREAM)
        if not isinstance(value, (bytes, bytearray)) or len(value) > 0xFFFF:
            raise PduError(f"TLV 0x{tag:04X} value must be bytes of at most 65535 octets", ESME_RINVPARLEN)
        append(_TLV_HEAD.pack(tag, len(value)))
        append(bytes(value))
    return b"".join(parts)


# --- decoding -------------------------------------------------------------------------------


def decode_pdu(frame: bytes) -> Pdu:
    """The PDU in `frame` (one whole frame, header included); raises only PduError."""
    size = len(frame)
    if size < HEADER_LENGTH:
        raise PduError(f"frame of {size} octets is shorter than a header", ESME_RINVCMDLEN)
    length, command_id, status, sequence = _HEADER.unpack_from(frame)
    if length != size:
        raise PduError(
            f"command_length {length} but frame of {size} octets",
            ESME_RINVCMDLEN,
            command_id=command_id,
            sequence_number=sequence,
        )
    cls = PDU_CLASSES.get(command_id)
    if cls is None:
        raise PduError(
            f"unsupported command_id 0x{command_id:08X}",
            ESME_RINVCMDID,
            command_id=command_id,
            sequence_number=sequence,
        )
    try:
        return _decode_body(cls, frame, status, sequence)
    except PduError as exc:
        exc.command_id = command_id
        exc.sequence_number = sequence
        raise


def _decode_body(cls: type[Pdu], frame: bytes, status: int, sequence: int) -> Pdu:
    end = len(frame)
    pos = HEADER_LENGTH
    if not cls.body:
        if pos != end:
            raise PduError(f"{_NAMES[cls.command_id]} has no body but {end - pos} octets follow the header", ESME_RINVCMDLEN)
        return cls(sequence_number=sequence, command_status=status)
    if pos == end and cls.body_optional:
        return cls(sequence_number=sequence, command_status=status)
    values: dict[str, Any] = {}
    for spec in cls.body:
        if spec.kind == CSTRING:
            limit = pos + spec.size
            nul = frame.find(b"\0", pos, limit if limit < end else end)
            if nul < 0:
                if limit > end:
                    raise PduError(f"body ends inside {spec.name}", ESME_RINVCMDLEN)
                raise PduError(f"{spec.name} longer than {spec.size - 1} octets", spec.status)
            values[spec.name] = frame[pos:nul].decode("latin-1")
            pos = nul + 1
        elif spec.kind == OCTET:
            if pos >= end:
                raise PduError(f"body ends before {spec.name}", ESME_RINVCMDLEN)
            values[spec.name] = frame[pos]
            pos += 1
        else:
            if pos >= end:
                raise PduError("body ends before sm_length", ESME_RINVCMDLEN)
            length = frame[pos]
            pos += 1
            if pos + length > end:
                raise PduError(f"sm_length {length} runs past the end of the PDU", ESME_RINVMSGLEN)
            values[spec.name] = frame[pos : pos + length]
            pos += length
    tlvs: dict[int, bytes] = {}
    while pos < end:
        if pos + 4 > end:
            raise PduError("truncated optional parameter header", ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEAD.unpack_from(frame, pos)
        pos += 4
        if pos + length > end:
            raise PduError(f"optional parameter 0x{tag:04X} runs past the end of the PDU", ESME_RINVOPTPARSTREAM)
        tlvs[tag] = frame[pos : pos + length]
        pos += length
    return cls(sequence_number=sequence, command_status=status, tlvs=tlvs, **values)  # type: ignore[call-arg]


async def read_frame(reader: asyncio.StreamReader, max_length: int = DEFAULT_MAX_PDU_LENGTH) -> bytes:
    """Exactly one frame's bytes. An impossible command_length raises a fatal PduError
    (framing is lost; answer generic_nack ESME_RINVCMDLEN and close)."""
    head = await reader.readexactly(4)
    length = int.from_bytes(head, "big")
    if length < HEADER_LENGTH or length > max_length:
        command_id = sequence = 0
        if length >= HEADER_LENGTH:
            # The rest of the header still lies inside the claimed frame: read it only to
            # echo the sequence number in the generic_nack.
            rest = await reader.readexactly(12)
            command_id, _status, sequence = struct.unpack(">III", rest)
        raise PduError(
            f"command_length {length} outside {HEADER_LENGTH}..{max_length}",
            ESME_RINVCMDLEN,
            command_id=command_id or None,
            sequence_number=sequence,
            fatal=True,
        )
    return head + await reader.readexactly(length - 4)


async def read_pdu(reader: asyncio.StreamReader, max_length: int = DEFAULT_MAX_PDU_LENGTH) -> Pdu:
    """Read and decode one PDU. Raises PduError (see `fatal`), asyncio.IncompleteReadError
    at end of stream, or ConnectionError."""
    return decode_pdu(await read_frame(reader, max_length))
