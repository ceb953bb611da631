"""Secrets and tenants: keys stored hashed and never logged; partners see only their own."""

from __future__ import annotations

import logging

from ..faults import refuse_messages_to
from ..helpers import DEFAULT_KEY, Gateway, bulk, entry


def test_another_partners_message_looks_exactly_like_an_unknown_one(gateway: Gateway):
    gateway.operator.partner("p2", key="p2-key-0123456789abcdef", shortcode="SC2")
    mine = gateway.post("/api/services/sendbulk", bulk(entry())).json()["responses"][0]["messageid"]
    theirs = gateway.post("/api/services/getdlr", {"partnerID": "p2", "apikey": "p2-key-0123456789abcdef", "messageID": mine})
    unknown = gateway.post("/api/services/getdlr", {"partnerID": "p2", "apikey": "p2-key-0123456789abcdef", "messageID": "1"})
    assert theirs.status_code == unknown.status_code == 200
    assert theirs.content == unknown.content == b'{"response-code":1008,"response-description":"No Delivery Report"}'
    own = gateway.post("/api/services/getdlr", {"partnerID": "p1", "apikey": DEFAULT_KEY, "messageID": mine})
    assert own.json()["response-code"] == 200


def test_a_partner_cannot_spend_through_another_partners_shortcode(gateway: Gateway):
    gateway.operator.partner("p2", key="p2-key-0123456789abcdef", shortcode="SC2")
    out = gateway.post("/api/services/sendbulk", bulk(entry(shortcode="SC2")))
    assert out.json()["response-code"] == 1001
    assert gateway.operator.balance("p2") == 1000_00


def test_unknown_partner_and_wrong_key_get_the_same_answer(gateway: Gateway):
    wrong_key = gateway.post("/api/services/getbalance", {"partnerID": "p1", "apikey": "wrong-key-0000000000"})
    no_partner = gateway.post("/api/services/getbalance", {"partnerID": "ghost", "apikey": "wrong-key-0000000000"})
    assert wrong_key.content == no_partner.content == b'{"response-code":1006,"response-description":"Invalid credentials"}'


def test_key_is_stored_hashed_only(gateway: Gateway):
    (stored,) = gateway.operator.sql("SELECT api_key_hash FROM partners WHERE id = 'p1'")[0]
    assert DEFAULT_KEY not in stored and stored.startswith("hmac-sha256$")
    dump = "\n".join(str(row) for row in gateway.operator.sql("SELECT * FROM partners"))
    assert DEFAULT_KEY not in dump


def test_keys_never_reach_the_logs(gateway: Gateway, caplog):
    caplog.set_level(logging.DEBUG)
    # Success, failure, query-string credentials, and a request that fails inside the server.
    gateway.post("/api/services/sendbulk", bulk(entry()))
    gateway.post("/api/services/sendbulk", bulk(entry(key="wrong-secret-0000000000")))
    gateway.get("/api/services/getbalance", params={"partnerID": "p1", "apikey": DEFAULT_KEY})
    refuse_messages_to(gateway.operator, None)
    failed = gateway.post("/api/services/sendbulk", bulk(entry()))
    assert failed.json()["responses"][0]["response-code"] == 1005
    assert any("could not be stored" in r.getMessage() for r in caplog.records)
    # httpx and httpcore are this test's own client; everything else is the server side.
    for record in [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        assert DEFAULT_KEY not in text and "wrong-secret-0000000000" not in text


def test_admin_api(gateway: Gateway, settings):
    import httpx as _httpx

    from ..helpers import LiveServer, make_settings

    with LiveServer(make_settings(settings.database_url.raw, SMSGW_ADMIN_TOKEN="operator-token-123")) as admin:
        url = admin.url + "/api/admin/partners/p1"
        assert _httpx.get(url).json()["response-code"] == 1006
        assert _httpx.get(url, headers={"authorization": "Bearer nope"}).json()["response-code"] == 1006
        auth = {"authorization": "Bearer operator-token-123"}
        shown = _httpx.get(url, headers=auth).json()
        assert shown["credit"] == "1000.00" and shown["shortcodes"] == ["SC1"] and "api_key_hash" not in str(shown)
        first = _httpx.post(url + "/topup", json={"units": "10.50", "reference": "invoice 42"}, headers=auth).json()
        again = _httpx.post(url + "/topup", json={"units": "10.50", "reference": "invoice 42"}, headers=auth).json()
        assert first["credit"] == again["credit"] == "1010.50"
        assert _httpx.post(url + "/topup", json={"units": "-5"}, headers=auth).json()["response-code"] == 1009
        assert _httpx.post(admin.url + "/api/admin/partners/ghost/topup", json={"units": "1"}, headers=auth).json()["response-code"] == 4093
    # Without a token the admin API is off.
    assert gateway.get("/api/admin/partners/p1").json()["response-code"] == 1006
