"""Message -> submit_sm parts: the wire parts are exactly `encoding.split`'s parts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.connectors.smpp.pdu import PduError, SubmitSm, decode_pdu, encode_pdu
from smsgw.connectors.smpp.segments import concatenation_of, message_parts, reference_for, split_udh
from smsgw.domain.encoding import GSM_BASIC, GSM_EXTENSION, Encoding, count_parts, decode, encode, encoding_of, split

gsm_text = st.text(st.sampled_from([ch for ch in GSM_BASIC if ch != "\x1b"] + list(GSM_EXTENSION)), max_size=700)
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)


def reassemble(parts: list, encoding: Encoding) -> str:
    texts = []
    for part in parts:
        pdu = decode_pdu(
            encode_pdu(SubmitSm(esm_class=part.esm_class, data_coding=part.data_coding, short_message=part.short_message, tlvs=dict(part.tlvs)))
        )
        _, body = split_udh(pdu.content, pdu.esm_class)
        texts.append(decode(body, pdu.data_coding))
    return "".join(texts)


@given(st.one_of(gsm_text, any_text), st.sampled_from(["udh", "sar"]), st.integers(0, 2**31))
@settings(max_examples=400)
def test_parts_are_the_split_and_reassemble_to_the_text(text: str, concatenation: str, message_id: int) -> None:
    encoding = encoding_of(text)
    parts = message_parts(text, encoding, concatenation=concatenation, reference=reference_for(message_id, concatenation))
    assert [part.text for part in parts] == split(text, encoding)
    assert len(parts) == count_parts(text)[1]
    assert reassemble(parts, encoding) == text
    for number, part in enumerate(parts, 1):
        assert part.data_coding == (0 if encoding is Encoding.GSM7 else 8)
        assert len(part.short_message) <= 140 or (encoding is Encoding.GSM7 and len(part.short_message) <= 160)
        where = concatenation_of(SubmitSm(esm_class=part.esm_class, short_message=part.short_message, tlvs=dict(part.tlvs)))
        if len(parts) == 1:
            assert where is None and part.esm_class == 0 and not part.tlvs
        else:
            assert where is not None
            assert (where.total, where.number) == (len(parts), number)
            assert where.reference == reference_for(message_id, concatenation)


def test_gsm_parts_are_unpacked_septets_with_an_8bit_reference_header() -> None:
    text = "x" * 153 + "€" + "y" * 10  # the euro sign costs two septets and may not be split
    parts = message_parts(text, Encoding.GSM7, reference=reference_for(1234))
    assert [len(part.text) for part in parts] == [153, 11]
    assert parts[0].short_message == bytes((5, 0, 3, 1234 % 256, 2, 1)) + encode("x" * 153, Encoding.GSM7)
    assert parts[1].short_message[:6] == bytes((5, 0, 3, 1234 % 256, 2, 2))
    assert parts[1].short_message[6:8] == b"\x1b\x65"
    assert all(part.esm_class == 0x40 for part in parts)


def test_ucs2_never_splits_a_surrogate_pair() -> None:
    text = "a" * 66 + "😀" + "b" * 10
    parts = message_parts(text, Encoding.UCS2)
    assert [part.text for part in parts] == ["a" * 66, "😀" + "b" * 10]
    assert parts[1].short_message[6:10] == "😀".encode("utf-16-be")


def test_sar_parts_carry_tlvs_and_no_header() -> None:
    parts = message_parts("z" * 200, Encoding.GSM7, concatenation="sar", reference=reference_for(70_000, "sar"))
    assert [part.esm_class for part in parts] == [0, 0]
    assert parts[0].short_message == b"z" * 153
    assert parts[1].tlvs == {0x020C: (70_000 % 65536).to_bytes(2, "big"), 0x020E: b"\x02", 0x020F: b"\x02"}


def test_payload_is_one_submit_with_the_whole_text() -> None:
    text = "Привет мир " * 20
    parts = message_parts(text, Encoding.UCS2, concatenation="payload")
    assert len(parts) == 1
    assert parts[0].short_message == b""
    assert parts[0].tlvs == {0x0424: text.encode("utf-16-be")}
    short = message_parts("short", Encoding.GSM7, concatenation="payload")
    assert short[0].short_message == b"short" and not short[0].tlvs


def test_unsendable_lengths_are_refused() -> None:
    with pytest.raises(PduError):
        message_parts("x" * 153 * 256, Encoding.GSM7)
    with pytest.raises(ValueError):
        message_parts("x", Encoding.GSM7, concatenation="smoke-signals")


def test_udh_split_tolerates_bad_headers() -> None:
    assert split_udh(b"\x09abc", 0x40) == (b"", b"\x09abc")
    assert split_udh(b"", 0x40) == (b"", b"")
    assert concatenation_of(SubmitSm(esm_class=0x40, short_message=b"\x05\x00\x07")) is None
    # 16-bit reference IE (0x08) from other senders is understood too.
    sixteen = SubmitSm(esm_class=0x40, short_message=bytes((6, 8, 4, 0x12, 0x34, 3, 1)) + b"hi")
    where = concatenation_of(sixteen)
    assert where is not None and (where.reference, where.total, where.number) == (0x1234, 3, 1)
