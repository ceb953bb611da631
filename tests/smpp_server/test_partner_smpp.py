"""The partner SMPP server over TCP on loopback, with an independent ESME (smpplib)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
import smpplib.smpp

from smsgw.connectors.smpp.pdu import (
    ESME_RBINDFAIL,
    ESME_RINVDSTADR,
    ESME_RINVPASWD,
    ESME_RINVSRCADR,
    ESME_ROK,
    ESME_RTHROTTLED,
)
from smsgw.smpp_server.statuses import STATUS_LOW_CREDIT, STATUS_OPTED_OUT
from smsgw.store import smpp_accounts

from ..helpers import DEFAULT_KEY, free_port, make_settings
from .helpers import Esme, add_account, receipt_id, smpp_gateway

FINAL_STATES = "(3, 4, 5, 6, 7, 8, 9)"


def number(index: int) -> str:
    return f"2547{index:08d}"


@pytest.fixture
def partner(operator):
    operator.partner("p1", credits=100_000_00, shortcode="SC1")
    add_account(operator, "p1", "p1_smpp", "secret1", max_binds=2)
    return operator


def wait_final(operator, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while operator.sql(f"SELECT count(*) FROM messages WHERE state IN {FINAL_STATES}")[0][0] < count:
        assert time.monotonic() < deadline, "messages did not reach a final state"
        time.sleep(0.1)


def test_binds_with_good_and_bad_credentials(settings, partner):
    partner.partner("p2", shortcode="SC2")
    add_account(partner, "p2", "p2_smpp", "pw2")
    partner.suspend("p2")
    with smpp_gateway(settings, deliver=False) as (_, port):
        first, second, third = (Esme(port, "p1_smpp", "secret1") for _ in range(3))
        try:
            assert first.bind() == ESME_ROK
            assert second.bind() == ESME_ROK
            assert third.bind() == ESME_RBINDFAIL  # the account's two binds are taken
        finally:
            for esme in (first, second, third):
                esme.close()
        for system_id, password, status in [
            ("p1_smpp", "wrong", ESME_RINVPASWD),
            ("nobody", "secret1", ESME_RINVPASWD),  # the same answer: an unknown system_id is not told apart
            ("p2_smpp", "pw2", ESME_RBINDFAIL),  # suspended partner
        ]:
            esme = Esme(port, system_id, password)
            try:
                assert esme.bind() == status, system_id
            finally:
                esme.close()
        # After a free bind slot (the first two closed), the account binds again.
        again = Esme(port, "p1_smpp", "secret1")
        try:
            assert again.bind() == ESME_ROK
            assert again.unbind() == ESME_ROK
        finally:
            again.close()


def test_wrong_passwords_are_throttled_per_address_without_locking_out_the_account(settings, partner):
    """Ten wrong passwords from an address: that address is not heard for a while, even with
    the right password (SMPP passwords are short enough to guess); the account still binds
    from elsewhere."""
    with smpp_gateway(settings, deliver=False) as (_, port):
        for attempt in range(10):
            esme = Esme(port, "p1_smpp", "guess")
            assert esme.bind() == ESME_RINVPASWD
            if attempt == 0:
                # Below the limit a refused bind leaves the connection open for another try.
                esme.client._socket.settimeout(0.3)
                with pytest.raises(socket.timeout):
                    esme.client._socket.recv(1)
            esme.close()
        for password in ("guess", "secret1"):
            flooding = Esme(port, "p1_smpp", password)
            try:
                assert flooding.bind() == ESME_RBINDFAIL, password
                # Past the limit the refusal closes the connection.
                flooding.client._socket.settimeout(5)
                assert flooding.client._socket.recv(1) == b""
            finally:
                flooding.close()
        elsewhere = Esme(port, "p1_smpp", "secret1", source="127.0.0.2")
        try:
            assert elsewhere.bind() == ESME_ROK
        finally:
            elsewhere.close()


def test_a_thousand_submits_are_accepted_charged_once_delivered_and_receipted(settings, partner):
    with smpp_gateway(settings) as (server, port):
        esme = Esme(port, "p1_smpp", "secret1")
        try:
            assert esme.bind() == ESME_ROK
            balance = partner.balance("p1")
            sequences: list[int] = []
            window = 10
            for index in range(1000):
                while len(sequences) - len(esme.answers) >= window:
                    esme.read()
                sequences.append(esme.submit(number(index), f"Message {index}".encode()))
            answers = [esme.answer_of(sequence) for sequence in sequences]
            assert {answer.status for answer in answers} == {ESME_ROK}
            ids = [answer.message_id for answer in answers]
            assert len(set(ids)) == 1000
            stored = partner.sql("SELECT count(*), sum(cost) FROM messages WHERE partner_id = 'p1'")[0]
            assert stored[0] == 1000
            assert partner.balance("p1") == balance - stored[1]
            charged = partner.sql("SELECT sum(message_count), sum(amount) FROM ledger WHERE partner_id = 'p1' AND kind = 'charge'")[0]
            assert charged == (1000, -stored[1])
            receipts = esme.wait_receipts(1000, timeout=120)
            assert sorted(receipt_id(r) for r in receipts) == sorted(ids)
            assert all(r.esm_class == 0x04 and b"stat:DELIVRD" in r.short_message for r in receipts)
            # getdlr over HTTP answers for a message submitted over SMPP.
            report = httpx.post(server.url + "/api/services/getdlr", json={"partnerID": "p1", "apikey": DEFAULT_KEY, "messageID": ids[0]}).json()
            assert report["delivery-description"] == "DeliveredToTerminal"
        finally:
            esme.close()


UCS2_TEXT = "Привет, мир! " * 12  # 156 characters of UCS-2: three parts of 67


@pytest.mark.parametrize("shape", ["udh", "sar", "payload"])
def test_a_long_ucs2_message_is_charged_per_part_and_answered_per_pdu(settings, partner, shape):
    data = UCS2_TEXT.encode("utf-16-be")
    chunks = [data[i : i + 134] for i in range(0, len(data), 134)]
    assert len(chunks) == 3
    with smpp_gateway(settings, deliver=False) as (_, port):
        esme = Esme(port, "p1_smpp", "secret1")
        try:
            assert esme.bind() == ESME_ROK
            if shape == "payload":
                sequences = [esme.submit(number(1), b"", data_coding=8, message_payload=data)]
            elif shape == "udh":
                sequences = [
                    esme.submit(number(1), bytes((5, 0, 3, 0x42, 3, n)) + chunk, data_coding=8, esm_class=0x40) for n, chunk in enumerate(chunks, 1)
                ]
            else:
                sequences = [
                    esme.submit(number(1), chunk, data_coding=8, sar_msg_ref_num=0x1234, sar_total_segments=3, sar_segment_seqnum=n)
                    for n, chunk in enumerate(chunks, 1)
                ]
            answers = [esme.answer_of(sequence) for sequence in sequences]
        finally:
            esme.close()
    assert {a.status for a in answers} == {ESME_ROK} and len({a.message_id for a in answers}) == 1
    rows = partner.sql("SELECT id, text, parts, cost, data_coding FROM messages")
    assert len(rows) == 1
    message_id, text, parts, cost, data_coding = rows[0]
    assert (str(message_id), text, parts, data_coding) == (answers[0].message_id, UCS2_TEXT, 3, 8)
    table = settings.networks
    assert cost == 3 * table.network_of(table.normaliser.normalise(number(1))).price_cents


def test_refusals_get_their_status_and_charge_nothing(settings, operator):
    operator.partner("rich", credits=1000_00, shortcode="RICH")
    operator.partner("poor", credits=0, shortcode="POOR")
    add_account(operator, "rich", "rich_smpp", "pw")
    add_account(operator, "poor", "poor_smpp", "pw")

    async def opt_out(store):
        from smsgw.store import optout

        await store.write(optout.add, "rich", "*", ["254712000100"], "operator", int(time.time() * 1000))

    operator._with_store(opt_out)
    cases = [
        ("poor_smpp", "POOR", number(5), STATUS_LOW_CREDIT),
        ("rich_smpp", "POOR", number(5), ESME_RINVSRCADR),  # another partner's shortcode
        ("rich_smpp", "NOSUCH", number(5), ESME_RINVSRCADR),
        ("rich_smpp", "RICH", "12345", ESME_RINVDSTADR),
        ("rich_smpp", "RICH", "254712000100", STATUS_OPTED_OUT),
    ]
    with smpp_gateway(settings, deliver=False) as (_, port):
        for system_id, source, destination, status in cases:
            esme = Esme(port, system_id, "pw")
            try:
                assert esme.bind() == ESME_ROK
                answer = esme.answer_of(esme.submit(destination, b"Hello", source=source))
                assert (answer.status, answer.message_id) == (status, ""), (system_id, source, destination)
            finally:
                esme.close()
    assert operator.sql("SELECT count(*) FROM messages")[0][0] == 0
    assert (operator.balance("rich"), operator.balance("poor")) == (1000_00, 0)
    assert operator.sql("SELECT count(*) FROM ledger WHERE kind = 'charge'")[0][0] == 0


def test_over_the_window_or_the_rate_the_esme_is_throttled_not_dropped(settings, operator):
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    add_account(operator, "p1", "narrow", "pw", window=1)
    add_account(operator, "p1", "slow", "pw", tps=3)
    with smpp_gateway(settings, deliver=False) as (_, port):
        for system_id in ("narrow", "slow"):
            esme = Esme(port, system_id, "pw")
            try:
                assert esme.bind() == ESME_ROK
                pdus = [
                    smpplib.smpp.make_pdu("submit_sm", client=esme.client, source_addr="SC1", destination_addr=number(i), short_message=b"hi")
                    for i in range(6)
                ]
                # One write: the server reads all six before the first is decided.
                esme.client._socket.sendall(b"".join(pdu.generate() for pdu in pdus))
                statuses = [esme.answer_of(pdu.sequence).status for pdu in pdus]
                assert statuses.count(ESME_ROK) >= 1 and statuses.count(ESME_RTHROTTLED) >= 3, (system_id, statuses)
                # Still bound: the next one, later, is taken.
                time.sleep(1.1)
                assert esme.answer_of(esme.submit(number(99), b"again")).status == ESME_ROK
            finally:
                esme.close()


def test_receipts_wait_in_the_store_for_a_receiver_bind_across_a_restart(settings, partner):
    port = free_port()
    with smpp_gateway(settings, port) as _:
        transmitter = Esme(port, "p1_smpp", "secret1", mode="transmitter")
        try:
            assert transmitter.bind() == ESME_ROK
            ids = [transmitter.answer_of(transmitter.submit(number(i), b"kept")).message_id for i in range(3)]
        finally:
            transmitter.close()
        wait_final(partner, 3)
    assert partner.sql("SELECT count(*) FROM smpp_receipts WHERE delivered_at IS NULL")[0][0] == 3
    with smpp_gateway(settings, port, deliver=False) as _:
        receiver = Esme(port, "p1_smpp", "secret1", mode="receiver", refuse_receipts=1)
        try:
            assert receiver.bind() == ESME_ROK
            receipts = receiver.wait_receipts(3, timeout=30)
            assert sorted(receipt_id(r) for r in receipts) == sorted(ids)
            assert receiver.refused == 1  # the refused one came again
            deadline = time.monotonic() + 10
            while partner.sql("SELECT count(*) FROM smpp_receipts WHERE delivered_at IS NULL")[0][0]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            receiver.close()


def test_a_message_sent_over_http_gets_no_smpp_receipt(settings, partner):
    with smpp_gateway(settings) as (server, port):
        receiver = Esme(port, "p1_smpp", "secret1", mode="receiver")
        try:
            assert receiver.bind() == ESME_ROK
            fields = {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "mobile": number(7), "message": "over http"}
            assert httpx.post(server.url + "/api/services/sendsms", data=fields).json()["responses"][0]["response-code"] == 200
            wait_final(partner, 1)
            receiver.client._socket.settimeout(2)
            with pytest.raises((smpplib.exceptions.ConnectionError, OSError)):
                receiver.read()
            assert receiver.receipts == []
        finally:
            receiver.close()


def test_enquire_link_idle_and_silent_binds_and_unbind_after_in_flight_work(database_url, operator):
    settings = make_settings(database_url, SMSGW_SMPP_IDLE_SECONDS="0.5")
    operator.partner("p1", credits=1000_00, shortcode="SC1")
    add_account(operator, "p1", "p1_smpp", "secret1")
    with smpp_gateway(settings, deliver=False) as (_, port):
        # Never binds: closed after the idle time.
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert idle.recv(1) == b""
        idle.close()
        # Bound and silent: asked with enquire_link, closed when it never answers.
        silent = Esme(port, "p1_smpp", "secret1")
        try:
            assert silent.bind() == ESME_ROK
            silent.client._socket.settimeout(5)
            assert silent.client.read_pdu().command == "enquire_link"
            assert silent.client._socket.recv(1) == b""
        finally:
            silent.close()
        # A bind that answers stays; its enquire_link is answered; unbind comes after the
        # answer of the submit_sm sent just before it.
        lively = Esme(port, "p1_smpp", "secret1")
        try:
            assert lively.bind() == ESME_ROK
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                lively.client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=lively.client))
                assert lively.read().command in ("enquire_link_resp", "enquire_link")
                time.sleep(0.2)
            submit = smpplib.smpp.make_pdu("submit_sm", client=lively.client, source_addr="SC1", destination_addr=number(1), short_message=b"last")
            unbind = smpplib.smpp.make_pdu("unbind", client=lively.client)
            lively.client._socket.sendall(submit.generate() + unbind.generate())
            first, second = lively.client.read_pdu(), lively.client.read_pdu()
            assert (first.command, int(first.status)) == ("submit_sm_resp", ESME_ROK)
            assert (second.command, second.sequence) == ("unbind_resp", unbind.sequence)
        finally:
            lively.close()
    assert operator.sql("SELECT count(*) FROM messages")[0][0] == 1


def test_a_system_id_given_to_another_partner_never_gets_the_first_ones_receipts(settings, partner):
    partner.partner("p2", shortcode="SC2")
    with smpp_gateway(settings) as (_, port):
        transmitter = Esme(port, "p1_smpp", "secret1", mode="transmitter")
        try:
            assert transmitter.bind() == ESME_ROK
            assert transmitter.answer_of(transmitter.submit(number(3), b"for p1 only")).status == ESME_ROK
        finally:
            transmitter.close()
        wait_final(partner, 1)
        partner._with_store(lambda store: store.write(smpp_accounts.remove_account, "p1_smpp"))
        add_account(partner, "p2", "p1_smpp", "other")
        receiver = Esme(port, "p1_smpp", "other", mode="receiver")
        try:
            assert receiver.bind() == ESME_ROK
            receiver.client._socket.settimeout(2)
            with pytest.raises((smpplib.exceptions.ConnectionError, OSError)):
                receiver.read()
            assert receiver.receipts == []
        finally:
            receiver.close()


def test_each_message_gets_its_report_the_way_it_came(settings, partner):
    """Over HTTP: the partner's callback, no deliver_sm. Over SMPP: deliver_sm, no callback."""
    partner._with_store(lambda store: store.set_callback("p1", f"http://127.0.0.1:{free_port()}/dlr", "s" * 32))
    with smpp_gateway(settings) as (server, port):
        esme = Esme(port, "p1_smpp", "secret1")
        try:
            assert esme.bind() == ESME_ROK
            over_smpp = esme.answer_of(esme.submit(number(8), b"over smpp")).message_id
            fields = {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "mobile": number(9), "message": "over http"}
            over_http = httpx.post(server.url + "/api/services/sendsms", data=fields).json()["responses"][0]["messageid"]
            assert [receipt_id(r) for r in esme.wait_receipts(1)] == [over_smpp]
            wait_final(partner, 2)
            deadline = time.monotonic() + 10
            while not partner.sql("SELECT message_id FROM callbacks"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert [str(row[0]) for row in partner.sql("SELECT message_id FROM callbacks")] == [over_http]
            esme.client._socket.settimeout(1)
            with pytest.raises((smpplib.exceptions.ConnectionError, OSError)):
                esme.read()
            assert len(esme.receipts) == 1
        finally:
            esme.close()


def test_submits_that_come_together_are_charged_together_and_low_credit_splits_the_group(settings, operator):
    """submit_sm that arrive while others are being decided share one acceptance (one ledger
    entry for several); when the credit pays for only some of such a group, each is decided
    alone, as if they had come apart."""
    operator.partner("rich", credits=1000_00, shortcode="RICH")
    price = settings.networks.network_of(settings.networks.normaliser.normalise(number(1))).price_cents
    operator.partner("poor", credits=2 * price, shortcode="POOR")
    add_account(operator, "rich", "rich_smpp", "pw", window=50)
    add_account(operator, "poor", "poor_smpp", "pw", window=50)
    with smpp_gateway(settings, deliver=False) as (_, port):
        answers = {}
        for system_id, shortcode, count in (("rich_smpp", "RICH", 40), ("poor_smpp", "POOR", 5)):
            esme = Esme(port, system_id, "pw")
            try:
                assert esme.bind() == ESME_ROK
                pdus = [
                    smpplib.smpp.make_pdu("submit_sm", client=esme.client, source_addr=shortcode, destination_addr=number(i), short_message=b"hi")
                    for i in range(count)
                ]
                esme.client._socket.sendall(b"".join(pdu.generate() for pdu in pdus))
                answers[system_id] = [esme.answer_of(pdu.sequence).status for pdu in pdus]
            finally:
                esme.close()
    assert answers["rich_smpp"] == [ESME_ROK] * 40
    assert sorted(answers["poor_smpp"]) == [ESME_ROK] * 2 + [STATUS_LOW_CREDIT] * 3
    ledger = operator.sql("SELECT partner_id, count(*), sum(message_count) FROM ledger WHERE kind = 'charge' GROUP BY partner_id")
    charges = {row[0]: row[1:] for row in ledger}
    assert charges["rich"][1] == 40 and charges["rich"][0] < 40
    assert charges["poor"] == (2, 2) and operator.balance("poor") == 0
