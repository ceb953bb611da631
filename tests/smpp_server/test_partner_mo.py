"""Inbound messages (MO) to partners that take them over SMPP, and the partner SMPP server's
metrics: a subscriber's deliver_sm from the built-in simulated carrier reaches the partner's
own ESME (smpplib) over TCP on loopback, and /metrics of the real server counts the traffic."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import smpplib.exceptions

from smsgw.connectors.smpp.pdu import ESME_RINVDSTADR, ESME_ROK, ESME_RTHROTTLED, DeliverSm
from smsgw.connectors.smpp.segments import concatenation_of, split_udh
from smsgw.domain.encoding import decode

from ..cli.test_operator_cli import smsgw
from ..helpers import DEFAULT_KEY, free_port, make_settings
from ..test_operations import delta, scrape, value
from .helpers import Esme, add_account, smpp_gateway

SUBSCRIBER = "254712000500"
UCS2_TEXT = "Habari yako? Привет"
LONG_TEXT = "".join(f"word{i} " for i in range(40)).strip()  # 239 GSM-7 characters: two parts


def field(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def whole_messages(pdus: list[Any]) -> list[tuple[str, str, str, int, int, int]]:
    """(source, destination, text, parts, data_coding, esm_class) of each message the ESME
    took, parts joined by their UDH reference in part order."""
    groups: dict[tuple[str, str, int], list[tuple[int, Any]]] = {}
    for pdu in pdus:
        ours = DeliverSm(esm_class=pdu.esm_class, short_message=pdu.short_message)
        where = concatenation_of(ours)
        key = (field(pdu.source_addr), field(pdu.destination_addr), where.reference if where else -id(pdu))
        groups.setdefault(key, []).append((where.number if where else 1, pdu))
    messages = []
    for (source, destination, _), parts in groups.items():
        data = b"".join(split_udh(pdu.short_message, pdu.esm_class)[1] for _, pdu in sorted(parts, key=lambda p: p[0]))
        first = parts[0][1]
        messages.append((source, destination, decode(data, first.data_coding), len(parts), first.data_coding, first.esm_class))
    return sorted(messages, key=lambda m: m[2])


@pytest.fixture
def feed(tmp_path) -> Path:
    """The file whose lines the built-in simulated carrier sends as subscribers' messages."""
    return tmp_path / "subscribers.txt"


@pytest.fixture
def mo_settings(database_url, feed):
    return make_settings(database_url, SMSGW_SIMULATOR_INBOUND_FILE=str(feed))


@pytest.fixture
def smpp_partner(tmp_path, database_url, operator):
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    add_account(operator, "p1", "mo_smpp", "secret1")
    chosen = smsgw(tmp_path, database_url, "partner", "inbound", "p1", "smpp")
    assert chosen.returncode == 0 and "deliver_sm" in chosen.stdout, chosen.stderr
    return operator


def wait_rows(operator, statement: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while operator.sql(statement)[0][0] < count:
        assert time.monotonic() < deadline, f"{statement}: fewer than {count}"
        time.sleep(0.1)


def test_subscribers_messages_reach_the_partners_receiver_in_gsm7_ucs2_and_parts(mo_settings, feed, smpp_partner):
    with smpp_gateway(mo_settings) as (server, port):
        receiver = Esme(port, "mo_smpp", "secret1", mode="receiver")
        try:
            assert receiver.bind() == ESME_ROK
            feed.write_text(f"{SUBSCRIBER} SC1 Hello partner\n{SUBSCRIBER} SC1 {UCS2_TEXT}\n{SUBSCRIBER} SC1 {LONG_TEXT}\n")
            pdus = receiver.wait_receipts(4, timeout=20)
            wait_rows(smpp_partner, "SELECT count(*) FROM inbound_messages WHERE forwarded_at IS NOT NULL", 3)
            inbox = httpx.post(server.url + "/api/services/getinbox", json={"partnerID": "p1", "apikey": DEFAULT_KEY}).json()
        finally:
            receiver.close()
    # esm_class 0 (not a receipt), UDHI (0x40) on the parts of the long one.
    assert whole_messages(pdus) == sorted(
        [(SUBSCRIBER, "SC1", "Hello partner", 1, 0, 0), (SUBSCRIBER, "SC1", UCS2_TEXT, 1, 8, 0), (SUBSCRIBER, "SC1", LONG_TEXT, 2, 0, 0x40)],
        key=lambda m: m[2],
    )
    assert [m["forwarded"] for m in inbox["messages"]] == [True, True, True]
    assert smpp_partner.sql("SELECT count(*) FROM smpp_inbound WHERE delivered_at IS NULL") == [(0,)]


def test_inbound_messages_wait_for_a_receiver_across_a_restart_and_a_refusal_is_sent_again(mo_settings, feed, smpp_partner):
    port = free_port()
    with smpp_gateway(mo_settings, port) as (server, _):
        # Only a transmitter: nothing can take it.
        transmitter = Esme(port, "mo_smpp", "secret1", mode="transmitter")
        try:
            assert transmitter.bind() == ESME_ROK
            feed.write_text(f"{SUBSCRIBER} SC1 Kept for later\n")
            wait_rows(smpp_partner, "SELECT count(*) FROM smpp_inbound WHERE delivered_at IS NULL", 1)
            inbox = httpx.post(server.url + "/api/services/getinbox", json={"partnerID": "p1", "apikey": DEFAULT_KEY}).json()
            assert [(m["message"], m["forwarded"]) for m in inbox["messages"]] == [("Kept for later", False)]
            assert value(scrape(server.url), "smsgw_smpp_server_deliver_sm_pending", kind="inbound") == 1
        finally:
            transmitter.close()
    assert smpp_partner.sql("SELECT forwarded_at FROM inbound_messages") == [(None,)]
    # Restarted without the carrier: the message comes from the store.
    with smpp_gateway(mo_settings, port, deliver=False) as (server, _):
        before = scrape(server.url)
        receiver = Esme(port, "mo_smpp", "secret1", mode="receiver", refuse_receipts=1)
        try:
            assert receiver.bind() == ESME_ROK
            (pdu,) = receiver.wait_receipts(1, timeout=30)
            assert receiver.refused == 1
            assert (field(pdu.source_addr), field(pdu.destination_addr), pdu.short_message) == (SUBSCRIBER, "SC1", b"Kept for later")
            wait_rows(smpp_partner, "SELECT count(*) FROM inbound_messages WHERE forwarded_at IS NOT NULL", 1)
            after = scrape(server.url)
        finally:
            receiver.close()
    assert delta(before, after, "smsgw_smpp_server_deliver_sm_total", kind="inbound", outcome="retried") == 1
    assert delta(before, after, "smsgw_smpp_server_deliver_sm_total", kind="inbound", outcome="sent") == 1
    assert value(after, "smsgw_smpp_server_deliver_sm_pending", kind="inbound") == 0
    assert smpp_partner.sql("SELECT attempts, last_error FROM inbound_messages") == [(2, None)]


def test_metrics_count_binds_submits_by_result_throttling_and_receipts(settings, operator):
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    add_account(operator, "p1", "metered", "pw", max_binds=3)
    add_account(operator, "p1", "narrowed", "pw", window=1)
    with smpp_gateway(settings) as (server, port):
        before = scrape(server.url)
        esme = Esme(port, "metered", "pw")
        listener = Esme(port, "metered", "pw", mode="receiver")
        narrow = Esme(port, "narrowed", "pw", mode="transmitter")
        try:
            assert esme.bind() == listener.bind() == narrow.bind() == ESME_ROK
            bound = scrape(server.url)
            assert value(bound, "smsgw_smpp_server_binds", account="metered", bind_type="transceiver") == 1
            assert value(bound, "smsgw_smpp_server_binds", account="metered", bind_type="receiver") == 1
            statuses = [esme.answer_of(esme.submit(f"2547120006{i:02d}", b"counted")).status for i in range(3)]
            statuses.append(esme.answer_of(esme.submit("12345", b"bad number")).status)
            assert statuses == [ESME_ROK, ESME_ROK, ESME_ROK, ESME_RINVDSTADR]
            sequences = [narrow.submit(f"2547120007{i:02d}", b"at once") for i in range(4)]
            throttled = [narrow.answer_of(sequence).status for sequence in sequences].count(ESME_RTHROTTLED)
            assert throttled >= 1
            # The receipts go to either receiver-capable bind of the account.
            deadline = time.monotonic() + 30
            while len(esme.receipts) + len(listener.receipts) < 3:
                assert time.monotonic() < deadline, "receipts"
                for each in (esme, listener):
                    each.client._socket.settimeout(0.2)
                    try:
                        each.read()
                    except (TimeoutError, smpplib.exceptions.ConnectionError):
                        continue
            # The narrowed account's receipts stay owed: it has no receiver bound.
            deadline = time.monotonic() + 10
            while value(after := scrape(server.url), "smsgw_smpp_server_deliver_sm_pending", kind="receipt") != 4 - throttled:
                assert time.monotonic() < deadline, "receipts taken still counted as pending"
                time.sleep(0.1)
        finally:
            for each in (esme, listener, narrow):
                each.close()
        deadline = time.monotonic() + 10
        while value(scrape(server.url), "smsgw_smpp_server_binds", account="metered", bind_type="receiver") != 0:
            assert time.monotonic() < deadline, "the closed bind still counted"
            time.sleep(0.1)
    assert delta(before, after, "smsgw_smpp_server_submit_sm_total", account="metered", result="accepted") == 3
    assert delta(before, after, "smsgw_smpp_server_submit_sm_total", account="metered", result=f"{ESME_RINVDSTADR:#010x}") == 1
    assert delta(before, after, "smsgw_smpp_server_submit_sm_total", account="narrowed", result=f"{ESME_RTHROTTLED:#010x}") == throttled
    assert delta(before, after, "smsgw_smpp_server_throttled_total", account="narrowed", reason="window") == throttled
    assert delta(before, after, "smsgw_smpp_server_deliver_sm_total", kind="receipt", outcome="sent") == 3


def test_choosing_smpp_for_inbound_messages_is_stored_and_auto_reply_is_refused(tmp_path, database_url, operator):
    operator.partner("p1", shortcode="SC1")
    refused = smsgw(tmp_path, database_url, "partner", "inbound", "p1", "smpp", "--auto-reply")
    assert refused.returncode != 0 and "auto-reply is for URLs" in refused.stderr
    assert operator.sql("SELECT inbound_url, inbound_method FROM partners WHERE id = 'p1'") == [(None, None)]
    assert smsgw(tmp_path, database_url, "partner", "inbound", "p1", "SMPP").returncode == 0
    assert operator.sql("SELECT inbound_url, inbound_method FROM partners WHERE id = 'p1'") == [(None, "SMPP")]
    assert smsgw(tmp_path, database_url, "partner", "inbound", "p1", "--clear").returncode == 0
    assert operator.sql("SELECT inbound_url, inbound_method FROM partners WHERE id = 'p1'") == [(None, None)]
