"""Hostile ESMEs: random and mutated PDUs over a real TCP connection never raise out of the
partner SMPP server's session, never hang it, and never stop it serving others."""

from __future__ import annotations

import socket
import time

import smpplib.smpp
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from smsgw.connectors.smpp.pdu import BindTransceiver, SubmitSm, decode_pdu, encode_pdu

from ..connectors.test_pdu import any_pdu
from .helpers import LOOPBACK, Esme, add_account, smpp_gateway


@st.composite
def mutated(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> bytes:
    """A valid frame with a few octets replaced, inserted or cut off."""
    data = bytearray(draw(frames))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["replace", "insert", "truncate"]))
        if action == "replace" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data.insert(position, draw(st.integers(0, 255)))
        else:
            del data[position:]
    return bytes(data)


submit = st.builds(
    SubmitSm,
    sequence_number=st.integers(1, 0x7FFFFFFF),
    source_addr=st.sampled_from(["SC1", "", "X" * 20]),
    destination_addr=st.sampled_from(["254712000001", "1", ""]),
    esm_class=st.sampled_from([0, 0x40]),
    data_coding=st.sampled_from([0, 3, 8, 4, 0xF0]),
    short_message=st.binary(max_size=140),
    tlvs=st.dictionaries(st.sampled_from([0x020C, 0x020E, 0x020F, 0x0424, 0x1234]), st.binary(max_size=8), max_size=3),
).map(encode_pdu)
chunk = st.one_of(any_pdu.map(encode_pdu), submit, mutated(submit), mutated(any_pdu.map(encode_pdu)), st.binary(max_size=40))


def bound_socket(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=5)
    sock.sendall(encode_pdu(BindTransceiver(sequence_number=1, system_id="fuzz", password="pw")))
    head = sock.recv(4096)
    assert decode_pdu(head).command_status == 0
    return sock


def test_hostile_streams_never_break_a_session_nor_the_server(settings, operator):
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    add_account(operator, "p1", "fuzz", "pw", max_binds=5, window=50)
    with smpp_gateway(settings, deliver=False) as (server, port):
        smpp_server = server.app.state.alongside

        @given(st.lists(chunk, min_size=1, max_size=6))
        @examples(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        def hostile_stream(chunks: list[bytes]) -> None:
            sock = bound_socket(port)
            try:
                sock.sendall(b"".join(chunks))
                # End of what the ESME sends: the session must finish with what it has and
                # close, not wait for ever.
                sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + 10
                while sock.recv(65536):
                    assert time.monotonic() < deadline, "the session did not end after the ESME's end of stream"
            except ConnectionResetError:
                pass
            finally:
                sock.close()

        hostile_stream()
        assert smpp_server.stats["session_errors"] == 0
        # Others are still served.
        esme = Esme(port, "fuzz", "pw")
        try:
            assert esme.bind() == 0
            esme.client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=esme.client))
            assert esme.read().command == "enquire_link_resp"
        finally:
            esme.close()
