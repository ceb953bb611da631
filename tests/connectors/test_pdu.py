"""The SMPP PDU codec: round trips, the bytes of known PDUs, and hostile input."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.connectors.smpp import pdu as smpp
from smsgw.connectors.smpp.pdu import (
    CSTRING,
    OCTET,
    PDU_CLASSES,
    DeliverSm,
    EnquireLink,
    PduError,
    SubmitSm,
    SubmitSmResp,
    decode_pdu,
    encode_pdu,
    read_pdu,
)


def pdu_strategy(cls: type[smpp.Pdu]) -> st.SearchStrategy[smpp.Pdu]:
    """Any valid instance of `cls`: every body field within its bounds, any TLVs."""
    fields: dict[str, st.SearchStrategy[object]] = {
        "sequence_number": st.integers(0, 0xFFFFFFFF),
        "command_status": st.integers(0, 0xFFFFFFFF),
    }
    for spec in cls.body:
        if spec.kind == CSTRING:
            fields[spec.name] = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=spec.size - 1)
        elif spec.kind == OCTET:
            fields[spec.name] = st.integers(0, 255)
        else:
            fields[spec.name] = st.binary(max_size=spec.size)
    if cls.body:
        fields["tlvs"] = st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=300), max_size=5)
    return st.builds(cls, **fields)


any_pdu = st.sampled_from(sorted(PDU_CLASSES.values(), key=lambda cls: cls.command_id)).flatmap(pdu_strategy)


@given(any_pdu)
@settings(max_examples=600)
def test_decode_inverts_encode(pdu: smpp.Pdu) -> None:
    assert decode_pdu(encode_pdu(pdu)) == pdu


@given(st.binary(max_size=400))
@settings(max_examples=1500)
def test_garbage_raises_only_pdu_error(data: bytes) -> None:
    try:
        decode_pdu(data)
    except PduError as exc:
        assert 0 < exc.status <= 0xFF


@given(any_pdu, st.data())
@settings(max_examples=800)
def test_corrupted_frames_raise_only_pdu_error(pdu: smpp.Pdu, data: st.DataObject) -> None:
    frame = bytearray(encode_pdu(pdu))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(4, len(frame) - 1))
        frame[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(smpp.HEADER_LENGTH, len(frame)))
    truncated = bytes(frame[:cut])
    # Keep command_length consistent so that the body parser, not the length check, is hit.
    truncated = struct.pack(">I", len(truncated)) + truncated[4:]
    try:
        decode_pdu(truncated)
    except PduError as exc:
        assert exc.sequence_number == struct.unpack(">I", truncated[12:16])[0]


def test_submit_sm_bytes_match_the_specification_layout() -> None:
    pdu = SubmitSm(
        sequence_number=7,
        source_addr_ton=5,
        source_addr="SMSGW",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="254712345678",
        registered_delivery=1,
        short_message=b"hi",
    )
    body = (
        b"\x00"  # service_type
        + b"\x05\x00SMSGW\x00"
        + b"\x01\x01254712345678\x00"
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + b"\x01\x00\x00\x00"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
        + b"\x02hi"
    )
    assert encode_pdu(pdu) == struct.pack(">IIII", 16 + len(body), 4, 0, 7) + body


def test_typed_tlv_accessors_write_the_specified_sizes() -> None:
    pdu = DeliverSm()
    pdu.sar_msg_ref_num = 0x1234
    pdu.sar_total_segments = 3
    pdu.sar_segment_seqnum = 2
    pdu.message_state = 2
    pdu.user_message_reference = 9
    pdu.network_error_code = (3, 0x0101)
    pdu.receipted_message_id = "0A1B"
    pdu.message_payload = b"long text"
    assert pdu.tlvs == {
        0x020C: b"\x12\x34",
        0x020E: b"\x03",
        0x020F: b"\x02",
        0x0427: b"\x02",
        0x0204: b"\x00\x09",
        0x0423: b"\x03\x01\x01",
        0x001E: b"0A1B\x00",
        0x0424: b"long text",
    }
    again = decode_pdu(encode_pdu(pdu))
    assert isinstance(again, DeliverSm)
    assert (again.sar_msg_ref_num, again.sar_total_segments, again.sar_segment_seqnum) == (0x1234, 3, 2)
    assert (again.message_state, again.user_message_reference, again.network_error_code) == (2, 9, (3, 0x0101))
    assert again.receipted_message_id == "0A1B"
    assert again.message_payload == again.content == b"long text"
    again.message_payload = None
    assert 0x0424 not in again.tlvs


def test_tlv_accessors_tolerate_what_peers_send() -> None:
    pdu = DeliverSm(tlvs={0x001E: b"abc", 0x0427: b"", 0x0423: b"\x01"})
    assert pdu.receipted_message_id == "abc"  # no NUL: still read
    assert pdu.message_state is None
    assert pdu.network_error_code is None
    with pytest.raises(PduError):
        pdu.sar_total_segments = 300


def test_error_response_without_body_decodes_and_is_written_without_body() -> None:
    frame = struct.pack(">IIII", 16, 0x80000004, smpp.ESME_RTHROTTLED, 5)
    response = decode_pdu(frame)
    assert response == SubmitSmResp(sequence_number=5, command_status=smpp.ESME_RTHROTTLED)
    assert encode_pdu(response) == frame


@pytest.mark.parametrize(
    ("frame", "status"),
    [
        (struct.pack(">IIII", 17, 0x15, 0, 1) + b"\x00", smpp.ESME_RINVCMDLEN),  # enquire_link has no body
        (struct.pack(">IIII", 20, 0x15, 0, 1), smpp.ESME_RINVCMDLEN),  # length disagrees with frame
        (struct.pack(">IIII", 16, 0x00000099, 0, 3), smpp.ESME_RINVCMDID),
        (struct.pack(">IIII", 16, 0x00000004, 0, 3), smpp.ESME_RINVCMDLEN),  # submit_sm without body
        (struct.pack(">IIII", 16 + 7, 0x80000004, 0, 3) + b"1234567", smpp.ESME_RINVCMDLEN),  # no NUL before the end
        (struct.pack(">IIII", 16 + 66, 0x80000004, 0, 3) + b"1" * 65 + b"\x00", smpp.ESME_RINVMSGID),
        (struct.pack(">IIII", 16 + 24, 0x00000002, 0, 3) + b"abcdefghijklmnopqrstuvw\x00", smpp.ESME_RINVSYSID),
    ],
)
def test_decode_errors_carry_the_status_to_answer(frame: bytes, status: int) -> None:
    with pytest.raises(PduError) as caught:
        decode_pdu(frame)
    assert caught.value.status == status
    assert caught.value.sequence_number == struct.unpack(">I", frame[12:16])[0]


def test_short_message_longer_than_the_body_is_invalid_message_length() -> None:
    good = encode_pdu(SubmitSm(short_message=b"abc"))
    bad = good[:-4] + b"\x09abc"
    with pytest.raises(PduError) as caught:
        decode_pdu(bad)
    assert caught.value.status == smpp.ESME_RINVMSGLEN


def test_truncated_tlv_is_an_optional_parameter_stream_error() -> None:
    frame = encode_pdu(SubmitSm(tlvs={0x0424: b"payload"}))[:-3]
    frame = struct.pack(">I", len(frame)) + frame[4:]
    with pytest.raises(PduError) as caught:
        decode_pdu(frame)
    assert caught.value.status == smpp.ESME_RINVOPTPARSTREAM


@pytest.mark.parametrize(
    ("pdu", "status"),
    [
        (SubmitSm(source_addr="X" * 21), smpp.ESME_RINVSRCADR),
        (SubmitSm(destination_addr="1" * 21), smpp.ESME_RINVDSTADR),
        (SubmitSm(short_message=b"x" * 255), smpp.ESME_RINVMSGLEN),
        (SubmitSm(esm_class=256), smpp.ESME_RINVESMCLASS),
        (SubmitSm(source_addr="Ωmega"), smpp.ESME_RINVSRCADR),
        (SubmitSm(source_addr="a\0b"), smpp.ESME_RINVSRCADR),
        (smpp.BindTransceiver(password="123456789"), smpp.ESME_RINVPASWD),
        (EnquireLink(sequence_number=1 << 32), smpp.ESME_RSYSERR),
    ],
)
def test_encoding_refuses_what_the_format_cannot_carry(pdu: smpp.Pdu, status: int) -> None:
    with pytest.raises(PduError) as caught:
        encode_pdu(pdu)
    assert caught.value.status == status


def _stream(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_read_pdu_reads_exactly_one_frame_at_a_time() -> None:
    first = encode_pdu(EnquireLink(sequence_number=1))
    second = encode_pdu(SubmitSm(sequence_number=2, short_message=b"x"))
    reader = _stream(first + second + b"\x00\x00")
    assert await read_pdu(reader) == EnquireLink(sequence_number=1)
    assert await read_pdu(reader) == SubmitSm(sequence_number=2, short_message=b"x")
    with pytest.raises(asyncio.IncompleteReadError):
        await read_pdu(reader)


async def test_read_pdu_rejects_absurd_lengths_without_reading_the_body() -> None:
    huge = struct.pack(">IIII", 0x7FFFFFFF, 4, 0, 42)
    reader = _stream(huge + b"rest of the stream")
    with pytest.raises(PduError) as caught:
        await read_pdu(reader, max_length=4096)
    assert caught.value.fatal and caught.value.status == smpp.ESME_RINVCMDLEN
    assert caught.value.sequence_number == 42
    assert await reader.read() == b"rest of the stream"

    with pytest.raises(PduError) as caught:
        await read_pdu(_stream(struct.pack(">I", 3)))
    assert caught.value.fatal


async def test_read_pdu_keeps_framing_after_a_garbled_body() -> None:
    garbled = struct.pack(">IIII", 16 + 3, 0x00000004, 0, 9) + b"abc"
    following = encode_pdu(EnquireLink(sequence_number=10))
    reader = _stream(garbled + following)
    with pytest.raises(PduError) as caught:
        await read_pdu(reader)
    assert not caught.value.fatal and caught.value.sequence_number == 9
    assert await read_pdu(reader) == EnquireLink(sequence_number=10)


def test_response_to_builds_the_matching_response() -> None:
    request = SubmitSm(sequence_number=77)
    response = smpp.response_to(request, smpp.ESME_ROK, message_id="abc")
    assert response == SubmitSmResp(sequence_number=77, message_id="abc")
    nack = smpp.response_to(smpp.GenericNack(sequence_number=3))
    assert isinstance(nack, smpp.GenericNack) and nack.command_status == smpp.ESME_RINVCMDID
    assert smpp.status_name(smpp.ESME_RTHROTTLED) == "ESME_RTHROTTLED (0x58)"


@given(st.lists(st.one_of(any_pdu.map(encode_pdu), st.binary(max_size=60)), max_size=6))
@settings(max_examples=300)
def test_reading_a_hostile_stream_raises_only_the_documented_errors(chunks: list[bytes]) -> None:
    async def read_all() -> tuple[list[smpp.Pdu], str]:
        reader = _stream(b"".join(chunks))
        decoded: list[smpp.Pdu] = []
        while True:
            try:
                decoded.append(await read_pdu(reader, max_length=4096))
            except PduError as exc:
                if exc.fatal:
                    return decoded, "framing lost"
            except asyncio.IncompleteReadError:
                return decoded, "end of stream"

    decoded, ending = asyncio.run(asyncio.wait_for(read_all(), 5))
    # The valid frames before the first garbage chunk are read back exactly, whatever follows.
    valid_prefix = []
    for chunk in chunks:
        try:
            valid_prefix.append(decode_pdu(chunk))
        except PduError:
            break
    else:
        assert ending == "end of stream"  # nothing but valid frames: read to the end
    assert decoded[: len(valid_prefix)] == valid_prefix
