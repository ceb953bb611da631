"""The partner SMPP server over TLS when its certificate and key are set."""

from __future__ import annotations

import socket
import ssl
import subprocess

import pytest

from smsgw.config import ConfigError, Settings
from smsgw.connectors.smpp.pdu import BindTransceiver, EnquireLink, decode_pdu, encode_pdu

from ..helpers import make_settings
from .helpers import LOOPBACK, add_account, smpp_gateway


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "smpp.crt", tmp_path / "smpp.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def read_exactly(sock, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def read_frame(sock) -> bytes:
    head = read_exactly(sock, 4)
    return head + read_exactly(sock, int.from_bytes(head, "big") - 4)


def test_binds_over_tls_and_plain_tcp_gets_nothing(database_url, operator, certificate):
    cert, key = certificate
    settings = make_settings(database_url, SMSGW_SMPP_TLS_CERT_FILE=str(cert), SMSGW_SMPP_TLS_KEY_FILE=str(key))
    operator.partner("p1", shortcode="SC1")
    add_account(operator, "p1", "p1_smpp", "secret1")
    with smpp_gateway(settings, deliver=False) as (_, port):
        context = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection((LOOPBACK, port), timeout=10) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(encode_pdu(BindTransceiver(sequence_number=1, system_id="p1_smpp", password="secret1")))
            assert decode_pdu(read_frame(tls)).command_status == 0
            tls.sendall(encode_pdu(EnquireLink(sequence_number=2)))
            assert decode_pdu(read_frame(tls)).sequence_number == 2
        with socket.create_connection((LOOPBACK, port), timeout=10) as plain:
            plain.sendall(encode_pdu(BindTransceiver(sequence_number=1, system_id="p1_smpp", password="secret1")))
            answer = plain.recv(4096)
            assert not answer.startswith(b"\x00\x00\x00")  # a TLS alert or nothing, never an SMPP answer


@pytest.mark.parametrize("given", ["SMSGW_SMPP_TLS_CERT_FILE", "SMSGW_SMPP_TLS_KEY_FILE"])
def test_a_certificate_without_its_key_is_a_configuration_error(given):
    with pytest.raises(ConfigError, match="set together"):
        Settings.from_env({given: "/some/file"})
