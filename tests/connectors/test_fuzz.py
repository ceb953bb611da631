"""Fuzzing what SMSCs send: mutated receipt texts through the parser, and random bytes mixed
with valid PDUs through a connector's session over a real TCP connection on loopback."""

from __future__ import annotations

import asyncio
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.connectors.smpp import pdu as smpp
from smsgw.connectors.smpp.client import SmppConnector
from smsgw.connectors.smpp.pdu import DeliverSm, encode_pdu
from smsgw.connectors.smpp.receipt import format_receipt_text, parse_receipt, printable
from smsgw.domain.states import DeliveryState

from ..helpers import wait_for
from .conftest import LOOPBACK
from .test_faults import ScriptedSmsc
from .test_pdu import any_pdu

STATS = ["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "ACCEPTD", "UNKNOWN", "ENROUTE"]


@st.composite
def mutated_receipt_texts(draw: st.DrawFn) -> tuple[str, str, str]:
    """A standard receipt text with a few characters replaced, inserted or deleted."""
    smsc_id = draw(st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=20))
    stat = draw(st.sampled_from(STATS))
    text = list(format_receipt_text(smsc_id, stat, submitted_at=1_700_000_000, done_at=1_700_000_060, text=draw(st.text(max_size=20))))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        character = draw(st.characters())
        if action == "insert" or position == len(text):
            text.insert(position, character)
        elif action == "replace":
            text[position] = character
        else:
            del text[position]
    return "".join(text), smsc_id, stat


@given(mutated_receipt_texts(), st.sampled_from([0, 3, 8]))
@settings(max_examples=300, deadline=None)
def test_mutated_receipt_texts_parse_to_a_receipt_or_none(case: tuple[str, str, str], data_coding: int) -> None:
    text, _, _ = case
    encoded = text.encode("utf-16-be" if data_coding == 8 else "latin-1", errors="replace")[:254]
    receipt = parse_receipt(DeliverSm(esm_class=0x04, data_coding=data_coding, short_message=encoded))
    if receipt is not None:
        assert receipt.smsc_message_id and receipt.smsc_message_id == printable(receipt.smsc_message_id)
        assert isinstance(receipt.state, DeliveryState)


@given(st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=20), st.sampled_from(STATS))
@settings(max_examples=100, deadline=None)
def test_unmutated_receipt_texts_read_back(smsc_id: str, stat: str) -> None:
    text = format_receipt_text(smsc_id, stat, submitted_at=1_700_000_000, done_at=1_700_000_060)
    receipt = parse_receipt(DeliverSm(esm_class=0x04, short_message=text.encode("latin-1")))
    assert receipt is not None and (receipt.smsc_message_id, receipt.stat) == (smsc_id, stat)


hostile_chunks = st.lists(
    st.one_of(
        any_pdu.map(encode_pdu), st.binary(min_size=1, max_size=60), any_pdu.map(encode_pdu).map(lambda frame: frame[: max(1, len(frame) // 2)])
    ),
    min_size=1,
    max_size=6,
)


@given(hostile_chunks)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_session_fed_hostile_bytes_answers_or_closes_and_binds_again(chunks: list[bytes]) -> None:
    """Whatever the SMSC sends, the session only answers (generic_nack or a response), ends
    cleanly when the SMSC closes, and its link binds again: nothing escapes the session."""

    async def scenario() -> None:
        smsc = ScriptedSmsc()
        port = await smsc.start()
        connector = SmppConnector("fuzz", LOOPBACK, port, "smsgw", "secret", reconnect_min=0.01, reconnect_max=0.05, response_timeout=2, bind_wait=2)
        try:
            await connector.start()
            _, writer = await asyncio.wait_for(smsc.connections.get(), 5)
            writer.write(b"".join(chunks))
            writer.write_eof()  # the session must end by itself now
            await asyncio.wait_for(smsc.connections.get(), 5)  # and its link bind again
            assert smsc.connection_count == 2
            answers: list[smpp.Pdu] = []

            def nacks_read() -> int:
                while not smsc.received.empty():
                    answers.append(smsc.received.get_nowait())
                return sum(isinstance(pdu, smpp.GenericNack) for pdu in answers)

            # Every generic_nack the session counted reached the SMSC (the SMSC's reader of the
            # first connection may still be catching up), and nothing but answers did.
            await wait_for(lambda: nacks_read() >= connector.stats["generic_nacks_sent"], 5, "the generic_nacks")
            assert nacks_read() == connector.stats["generic_nacks_sent"]
            assert all(pdu.command_id & 0x80000000 for pdu in answers), answers
            assert all(link.task is not None and not link.task.done() for link in connector._links)
        finally:
            await asyncio.wait_for(connector.stop(timeout=0.05), 5)  # this SMSC never answers unbind
            await smsc.stop()

    asyncio.run(asyncio.wait_for(scenario(), 20))
