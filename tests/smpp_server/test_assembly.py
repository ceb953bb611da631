"""submit_sm -> whole messages, answer codes -> command_status, final states -> receipts:
pure code, table-driven."""

from __future__ import annotations

import pytest

from smsgw.connectors.smpp.pdu import (
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVPARLEN,
    ESME_RINVSRCADR,
    ESME_ROK,
    ESME_RSUBMITFAIL,
    ESME_RSYSERR,
    TLV_MESSAGE_PAYLOAD,
    TLV_SAR_MSG_REF_NUM,
    TLV_SAR_SEGMENT_SEQNUM,
    TLV_SAR_TOTAL_SEGMENTS,
    SubmitSm,
)
from smsgw.connectors.smpp.receipt import parse_receipt
from smsgw.domain.codes import Code
from smsgw.domain.encoding import Encoding, encode
from smsgw.domain.states import DeliveryState
from smsgw.smpp_server.assembly import Assembler, Refused
from smsgw.smpp_server.server import receipt_pdu
from smsgw.smpp_server.statuses import STATUS_LOW_CREDIT, STATUS_OPTED_OUT, status_of
from smsgw.store.smpp_accounts import OwedReceipt


def udh(reference: int, total: int, number: int, data: bytes, **fields) -> SubmitSm:
    return SubmitSm(
        source_addr="SC1", destination_addr="254712000001", esm_class=0x40, short_message=bytes((5, 0, 3, reference, total, number)) + data, **fields
    )


def sar(reference: int, total: int, number: int, data: bytes, **fields) -> SubmitSm:
    tlvs = {TLV_SAR_MSG_REF_NUM: reference.to_bytes(2, "big"), TLV_SAR_TOTAL_SEGMENTS: bytes((total,)), TLV_SAR_SEGMENT_SEQNUM: bytes((number,))}
    return SubmitSm(source_addr="SC1", destination_addr="254712000001", short_message=data, tlvs=tlvs, **fields)


# A UCS-2 text whose surrogate pair (the emoji) is cut between the two parts' bytes.
EMOJI_TEXT = "ab😀cd"
EMOJI_BYTES = EMOJI_TEXT.encode("utf-16-be")

WHOLE_CASES = [
    ("gsm7-single", [SubmitSm(source_addr="SC1", destination_addr="1", short_message=encode("Hello @ £", Encoding.GSM7))], "Hello @ £"),
    ("latin1", [SubmitSm(source_addr="SC1", destination_addr="1", data_coding=3, short_message="café".encode("latin-1"))], "café"),
    ("ascii", [SubmitSm(source_addr="SC1", destination_addr="1", data_coding=1, short_message=b"plain")], "plain"),
    ("ucs2", [SubmitSm(source_addr="SC1", destination_addr="1", data_coding=8, short_message="Привет".encode("utf-16-be"))], "Привет"),
    (
        "payload",
        [SubmitSm(source_addr="SC1", destination_addr="1", data_coding=8, tlvs={TLV_MESSAGE_PAYLOAD: ("Ω" * 300).encode("utf-16-be")})],
        "Ω" * 300,
    ),
    ("udh-in-order", [udh(7, 2, 1, b"Hello "), udh(7, 2, 2, b"world")], "Hello world"),
    ("udh-reversed", [udh(7, 3, 3, b"c"), udh(7, 3, 1, b"a"), udh(7, 3, 2, b"b")], "abc"),
    ("sar", [sar(0x1234, 2, 2, b"second"), sar(0x1234, 2, 1, b"first ")], "first second"),
    ("udh-one-part", [udh(9, 1, 1, b"alone")], "alone"),
    ("ucs2-surrogate-across-parts", [udh(1, 2, 1, EMOJI_BYTES[:6], data_coding=8), udh(1, 2, 2, EMOJI_BYTES[6:], data_coding=8)], EMOJI_TEXT),
]


@pytest.mark.parametrize(("pdus", "text"), [case[1:] for case in WHOLE_CASES], ids=[case[0] for case in WHOLE_CASES])
def test_parts_make_one_whole_message(pdus, text):
    assembler = Assembler(timeout=60)
    results = [assembler.add(pdu, now=0) for pdu in pdus]
    assert results[:-1] == [None] * (len(pdus) - 1)
    whole = results[-1]
    assert whole is not None and whole.text == text and sorted(id(p) for p in whole.pdus) == sorted(id(p) for p in pdus)
    assert assembler.held == 0


def test_two_messages_interleaved_do_not_mix():
    assembler = Assembler(timeout=60)
    assert assembler.add(udh(1, 2, 1, b"A1"), now=0) is None
    assert assembler.add(udh(2, 2, 1, b"B1"), now=0) is None
    assert assembler.held == 2
    assert assembler.add(udh(2, 2, 2, b"B2"), now=0).text == "B1B2"
    assert assembler.add(udh(1, 2, 2, b"A2"), now=0).text == "A1A2"


REFUSED_CASES = [
    ("unknown-data-coding", [SubmitSm(data_coding=4, short_message=b"\x00\x01")], ESME_RSUBMITFAIL),
    ("payload-and-short-message", [SubmitSm(short_message=b"x", tlvs={TLV_MESSAGE_PAYLOAD: b"y"})], ESME_RINVPARLEN),
    ("part-beyond-total", [udh(1, 2, 3, b"x")], ESME_RINVMSGLEN),
    ("part-zero", [udh(1, 2, 0, b"x")], ESME_RINVMSGLEN),
    ("part-twice", [udh(1, 3, 1, b"x"), udh(1, 3, 1, b"x")], ESME_RSUBMITFAIL),
    ("coding-changes-midway", [udh(1, 2, 1, b"x"), udh(1, 2, 2, b"\x00y", data_coding=8)], ESME_RSUBMITFAIL),
]


@pytest.mark.parametrize(("pdus", "status"), [case[1:] for case in REFUSED_CASES], ids=[case[0] for case in REFUSED_CASES])
def test_unreadable_parts_are_refused_alone(pdus, status):
    assembler = Assembler(timeout=60)
    for pdu in pdus[:-1]:
        assert assembler.add(pdu, now=0) is None
    with pytest.raises(Refused) as refused:
        assembler.add(pdus[-1], now=0)
    assert refused.value.status == status


def test_an_incomplete_message_expires_with_all_its_parts():
    assembler = Assembler(timeout=30)
    first, second = udh(1, 3, 1, b"a"), udh(1, 3, 2, b"b")
    assembler.add(first, now=100)
    assembler.add(second, now=110)
    assert assembler.expired(now=129) == []
    assert assembler.expired(now=131) == [[first, second]]
    assert assembler.held == 0


STATUS_CASES = [
    (Code.SUCCESS, ESME_ROK),
    (Code.INVALID_SENDER_ID, ESME_RINVSRCADR),
    (Code.INVALID_MOBILE, ESME_RINVDSTADR),
    (Code.NETWORK_NOT_ALLOWED, ESME_RINVDSTADR),
    (Code.LOW_CREDIT, STATUS_LOW_CREDIT),
    (Code.RECIPIENT_OPTED_OUT, STATUS_OPTED_OUT),
    (Code.UNSUPPORTED_DATA_TYPE, ESME_RINVMSGLEN),
    (Code.TRY_AGAIN_LATER, ESME_RSYSERR),
    (Code.MESSAGE_SYSTEM_ERROR, ESME_RSYSERR),
    (Code.INVALID_CREDENTIALS, ESME_RSUBMITFAIL),
    (999_999, ESME_RSUBMITFAIL),
]


@pytest.mark.parametrize(("code", "status"), STATUS_CASES, ids=[str(code) for code, _ in STATUS_CASES])
def test_answer_codes_map_to_the_contracts_statuses(code, status):
    assert status_of(int(code)) == status


RECEIPT_CASES = [
    (DeliveryState.DELIVERED, "DELIVRD", 2),
    (DeliveryState.ABSENT_SUBSCRIBER, "EXPIRED", 3),
    (DeliveryState.DELIVERY_IMPOSSIBLE, "UNDELIV", 5),
    (DeliveryState.SENDER_BLACKLISTED, "REJECTD", 8),
    (DeliveryState.UNKNOWN, "UNKNOWN", 7),
    (DeliveryState.NO_RECEIPT, "UNKNOWN", 7),
    (DeliveryState.CANCELLED, "DELETED", 4),
]


@pytest.mark.parametrize(("state", "stat", "message_state"), RECEIPT_CASES, ids=[case[0].name for case in RECEIPT_CASES])
def test_a_final_state_goes_back_as_a_standard_receipt(state, stat, message_state):
    owed = OwedReceipt(10000042, "254712000001", "SC1", "Привет and more text here", int(state), 1_700_000_000_000, 1_700_000_060_000, None, 0)
    pdu = receipt_pdu(owed)
    assert (pdu.esm_class, pdu.source_addr, pdu.destination_addr) == (0x04, "254712000001", "SC1")
    assert pdu.receipted_message_id == "10000042" and pdu.tlvs[0x0427] == bytes((message_state,))
    text = pdu.short_message.decode("ascii")
    assert text.startswith("id:10000042 sub:001 dlvrd:") and "submit date:2311142213 done date:2311142214" in text and f"stat:{stat}" in text
    parsed = parse_receipt(pdu)  # our carrier-side parser reads it back
    assert parsed is not None and parsed.smsc_message_id == "10000042" and parsed.stat == stat
