"""Delivery receipt parsing and SMSC message id matching."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.connectors.smpp.pdu import DataSm, DeliverSm
from smsgw.connectors.smpp.receipt import (
    format_receipt_text,
    parse_receipt,
    parse_receipt_date,
    parse_receipt_text,
    smsc_id_keys,
    smsc_ids_match,
    state_of_stat,
)
from smsgw.domain.states import DeliveryState

RECEIPT_FIELDS = {"id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text"}
STANDARD = "id:0123456789 sub:001 dlvrd:001 submit date:2601151030 done date:2601151032 stat:DELIVRD err:000 text:Hello there"


def receipt_pdu(text: str, **tlvs: object) -> DeliverSm:
    pdu = DeliverSm(source_addr="254712345678", destination_addr="SMSGW", esm_class=0x04, short_message=text.encode("latin-1"))
    for name, value in tlvs.items():
        setattr(pdu, name, value)
    return pdu


def test_standard_receipt() -> None:
    receipt = parse_receipt(receipt_pdu(STANDARD))
    assert receipt is not None
    assert receipt.smsc_message_id == "0123456789"
    assert receipt.state is DeliveryState.DELIVERED and receipt.stat == "DELIVRD"
    assert receipt.error == "000"
    assert receipt.done_at == datetime(2026, 1, 15, 10, 32, tzinfo=UTC).timestamp()
    assert (receipt.source, receipt.destination) == ("254712345678", "SMSGW")
    assert receipt.raw_text == STANDARD


def test_any_order_any_case_missing_fields_and_seconds() -> None:
    fields = parse_receipt_text("STAT:undeliv Done_Date:260115103259 ID:abc-1 Err:0x0B")
    assert fields == {"stat": "undeliv", "done date": "260115103259", "id": "abc-1", "err": "0x0B"}
    receipt = parse_receipt(receipt_pdu("STAT:undeliv Done_Date:260115103259 ID:abc-1"))
    assert receipt is not None
    assert receipt.smsc_message_id == "abc-1"
    assert receipt.state is DeliveryState.DELIVERY_IMPOSSIBLE and receipt.stat == "UNDELIV"
    assert receipt.done_at == datetime(2026, 1, 15, 10, 32, 59, tzinfo=UTC).timestamp()
    assert receipt.error is None


def test_text_containing_keys_does_not_override_fields() -> None:
    fields = parse_receipt_text("id:7 stat:DELIVRD err:000 text:id:99 stat:UNDELIV done")
    assert fields["id"] == "7" and fields["stat"] == "DELIVRD"
    assert fields["text"] == "id:99 stat:UNDELIV done"


def test_tlvs_win_over_the_text() -> None:
    pdu = receipt_pdu("id:111 stat:DELIVRD err:000", receipted_message_id="222", message_state=5)
    receipt = parse_receipt(pdu)
    assert receipt is not None
    assert receipt.smsc_message_id == "222"
    assert receipt.stat == "UNDELIV" and receipt.state is DeliveryState.DELIVERY_IMPOSSIBLE


def test_tlv_only_receipt_as_data_sm() -> None:
    pdu = DataSm(source_addr="254700000000", esm_class=0x04)
    pdu.receipted_message_id = "ff01"
    pdu.message_state = 3
    pdu.network_error_code = (1, 27)
    receipt = parse_receipt(pdu)
    assert receipt is not None
    assert (receipt.smsc_message_id, receipt.stat, receipt.state) == ("ff01", "EXPIRED", DeliveryState.ABSENT_SUBSCRIBER)
    assert receipt.error == "1/27" and receipt.done_at is None


def test_receipt_without_id_is_none() -> None:
    assert parse_receipt(receipt_pdu("stat:DELIVRD err:000")) is None
    assert parse_receipt(receipt_pdu("")) is None


def test_ucs2_receipt_text() -> None:
    pdu = DeliverSm(esm_class=0x04, data_coding=8, short_message="id:5 stat:DELIVRD text:Привет".encode("utf-16-be"))
    receipt = parse_receipt(pdu)
    assert receipt is not None and receipt.smsc_message_id == "5" and receipt.raw_text.endswith("Привет")


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DELIVRD", DeliveryState.DELIVERED),
        ("delivered", DeliveryState.DELIVERED),
        ("EXPIRED", DeliveryState.ABSENT_SUBSCRIBER),
        ("UNDELIV", DeliveryState.DELIVERY_IMPOSSIBLE),
        ("REJECTD", DeliveryState.DELIVERY_IMPOSSIBLE),
        ("DELETED", DeliveryState.DELIVERY_IMPOSSIBLE),
        ("ACCEPTD", DeliveryState.DELIVERED),
        ("ENROUTE", DeliveryState.SENT_TO_NETWORK),
        ("UNKNOWN", DeliveryState.UNKNOWN),
        ("WHATEVER", DeliveryState.UNKNOWN),
    ],
)
def test_stat_states(stat: str, state: DeliveryState) -> None:
    assert state_of_stat(stat) is state


@pytest.mark.parametrize(
    ("message_state", "state"),
    [
        (1, DeliveryState.SENT_TO_NETWORK),
        (2, DeliveryState.DELIVERED),
        (3, DeliveryState.ABSENT_SUBSCRIBER),
        (4, DeliveryState.DELIVERY_IMPOSSIBLE),
        (5, DeliveryState.DELIVERY_IMPOSSIBLE),
        (6, DeliveryState.DELIVERED),
        (7, DeliveryState.UNKNOWN),
        (8, DeliveryState.DELIVERY_IMPOSSIBLE),
    ],
)
def test_message_state_tlv_states(message_state: int, state: DeliveryState) -> None:
    receipt = parse_receipt(receipt_pdu("id:1", message_state=message_state))
    assert receipt is not None and receipt.state is state


def test_dates() -> None:
    assert parse_receipt_date("2602291200") is None  # 2026 is not a leap year
    assert parse_receipt_date("24022912") is None
    assert parse_receipt_date("2402291200") == datetime(2024, 2, 29, 12, 0, tzinfo=UTC).timestamp()
    assert parse_receipt_date("２４０２２９１２００") is None  # full-width digits are not digits here


def test_formatted_receipt_reads_back() -> None:
    text = format_receipt_text("0000000123", "DELIVRD", submitted_at=1_700_000_000, done_at=1_700_000_060, text="a" * 30)
    fields = parse_receipt_text(text)
    assert fields["id"] == "0000000123" and fields["stat"] == "DELIVRD" and fields["text"] == "a" * 20
    assert fields["sub"] == "001" and fields["dlvrd"] == "001"


@given(st.text(max_size=300))
@settings(max_examples=500)
def test_parsing_never_raises(text: str) -> None:
    fields = parse_receipt_text(text)
    assert set(fields) <= RECEIPT_FIELDS
    assert all(value == value.strip() and (key == "text" or not any(c.isspace() for c in value)) for key, value in fields.items())
    receipt = parse_receipt(DeliverSm(esm_class=0x04, short_message=text.encode("utf-8")[:254]))
    assert receipt is None or (receipt.smsc_message_id and isinstance(receipt.state, DeliveryState))


@given(st.binary(max_size=254), st.sampled_from([0, 1, 3, 8, 0xF0]), st.dictionaries(st.sampled_from([0x1E, 0x427, 0x423]), st.binary(max_size=70)))
@settings(max_examples=500)
def test_parsing_hostile_pdus_never_raises(data: bytes, data_coding: int, tlvs: dict[int, bytes]) -> None:
    receipt = parse_receipt(DeliverSm(esm_class=0x04, data_coding=data_coding, short_message=data, tlvs=tlvs))
    if receipt is not None:
        assert receipt.smsc_message_id


# --- id matching ----------------------------------------------------------------------------


def test_documented_id_examples() -> None:
    assert smsc_ids_match("0A1B", "2587")
    assert smsc_ids_match("2587", "0A1B")
    assert smsc_ids_match("000123", "123")
    assert smsc_ids_match("AbC-1", "abc-1")
    assert smsc_ids_match(" 5F\0", "5f")
    assert not smsc_ids_match("0A1B", "0A1C")
    assert not smsc_ids_match("abc-1", "abc-2")
    assert smsc_id_keys("") == []
    assert smsc_id_keys("000123")[0] == "s:000123"  # the exact form comes first


@given(st.integers(0, 2**64), st.integers(0, 6), st.booleans())
def test_hex_and_decimal_writings_of_one_number_match(number: int, padding: int, upper: bool) -> None:
    hex_id = format(number, "X" if upper else "x").rjust(padding + 1, "0")
    decimal_id = str(number).rjust(padding + 10, "0")
    assert smsc_ids_match(hex_id, decimal_id)
    assert smsc_ids_match(decimal_id, hex_id)
    assert smsc_ids_match(hex_id, hex_id.lower())


@given(st.text(max_size=70), st.text(max_size=70))
def test_matching_is_symmetric_and_reflexive(first: str, second: str) -> None:
    assert smsc_ids_match(first, second) == smsc_ids_match(second, first)
    if smsc_id_keys(first):
        assert smsc_ids_match(first, first)


@given(st.integers(0, 2**40), st.integers(0, 2**40))
def test_different_hex_ids_do_not_match(first: int, second: int) -> None:
    # Ids that both contain a hex letter have a single reading; distinct values never match.
    first_id, second_id = f"A{first:X}", f"A{second:X}"
    assert smsc_ids_match(first_id, second_id) == (first == second)


def test_control_characters_from_the_peer_are_dropped() -> None:
    # A C string's NUL left in the text (PostgreSQL refuses NUL in text), and other noise.
    receipt = parse_receipt(receipt_pdu("id:00AB12\x00 sub:001 dlvrd:001 stat:DELIVRD\x00 err:000\x00\x07"))
    assert receipt is not None
    assert receipt.smsc_message_id == "00AB12"
    assert receipt.stat == "DELIVRD" and receipt.error == "000"
    assert "\x00" not in receipt.raw_text
