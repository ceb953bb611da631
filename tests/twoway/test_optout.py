"""Opt-out lists through the operator CLI and the partner API: a listed number gets 1011 in
its entry, is neither charged nor queued, and the rest of the request is unaffected."""

from __future__ import annotations

from ..cli.test_operator_cli import smsgw
from ..helpers import DEFAULT_KEY, Gateway, bulk, entry

CREDS = {"partnerID": "p1", "apikey": DEFAULT_KEY}


def codes(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [e["response-code"] for e in response.json()["responses"]]


def queued_numbers(gateway: Gateway) -> list[str]:
    return [row[0] for row in gateway.operator.sql("SELECT msisdn FROM messages ORDER BY id")]


def test_listed_numbers_get_1011_and_cost_nothing(gateway: Gateway, tmp_path):
    database_url = gateway.operator.settings.database_url.raw
    added = smsgw(tmp_path, database_url, "optout", "add", "p1", "--shortcode", "SC1", "0712000100")
    assert added.returncode == 0, added.stderr
    assert "1 numbers added" in added.stdout
    numbers_file = tmp_path / "numbers.csv"
    numbers_file.write_text("mobile,name\n+254712000200,Ann\n")
    everywhere = smsgw(tmp_path, database_url, "optout", "add", "p1", "--file", str(numbers_file))
    assert everywhere.returncode == 0, everywhere.stderr
    listing = smsgw(tmp_path, database_url, "optout", "list", "p1").stdout
    assert "254712000100\tSC1\toperator" in listing and "254712000200\tall\toperator" in listing

    before = gateway.operator.balance("p1")
    response = gateway.post(
        "/api/services/sendbulk",
        bulk(entry("0712000100", clientsmsid=1), entry("0712000300", clientsmsid=2), entry("254712000200", clientsmsid=3)),
    )
    first, second, third = response.json()["responses"]
    assert first == {"response-code": 1011, "response-description": "Recipient opted out", "mobile": "0712000100", "clientsmsid": 1}
    assert second["response-code"] == 200 and third["response-code"] == 1011
    assert gateway.operator.balance("p1") == before - 100
    charge = [e for e in gateway.operator.ledger("p1") if e["kind"] == "charge"]
    assert [(c["amount"], c["message_count"]) for c in charge] == [(-100, 1)]
    assert queued_numbers(gateway) == ["254712000300"]

    # sendsms and sendotp check the same list, number by number.
    for path in ("/api/services/sendsms", "/api/services/sendotp"):
        out = gateway.post(path, dict(CREDS, shortcode="SC1", message="hi", mobile="0712000100,0712000400"))
        assert codes(out) == [1011, 200]

    removed = smsgw(tmp_path, database_url, "optout", "remove", "p1", "0712000100", "0712000200")
    assert removed.returncode == 0 and "2 entries removed" in removed.stdout
    assert codes(gateway.post("/api/services/sendbulk", bulk(entry("0712000100"), entry("0712000200")))) == [200, 200]


def test_a_list_is_one_partners_and_one_shortcodes(gateway: Gateway, tmp_path):
    database_url = gateway.operator.settings.database_url.raw
    gateway.operator.partner("p2", shortcode="SC2")
    gateway.operator.sql("INSERT INTO shortcodes (shortcode, partner_id, created_at, promotional) VALUES ('SC1B', 'p1', 0, 0)")
    # p2's list (all its shortcodes) and p1's list for another shortcode do not touch p1 on SC1.
    assert smsgw(tmp_path, database_url, "optout", "add", "p2", "0712000100").returncode == 0
    assert smsgw(tmp_path, database_url, "optout", "add", "p1", "--shortcode", "SC1B", "0712000100").returncode == 0
    assert codes(gateway.post("/api/services/sendbulk", bulk(entry("0712000100")))) == [200]
    assert codes(gateway.post("/api/services/sendbulk", bulk(entry("0712000100", shortcode="SC1B")))) == [1011]


def test_optout_cli_errors(gateway: Gateway, tmp_path):
    database_url = gateway.operator.settings.database_url.raw
    unknown = smsgw(tmp_path, database_url, "optout", "add", "ghost", "0712000100")
    assert unknown.returncode == 1 and "ghost does not exist" in unknown.stderr
    bad = smsgw(tmp_path, database_url, "optout", "add", "p1", "12")
    assert bad.returncode == 2 and "not valid mobile numbers: 12" in bad.stderr
    nothing = smsgw(tmp_path, database_url, "optout", "add", "p1")
    assert nothing.returncode == 2 and "give numbers" in nothing.stderr
