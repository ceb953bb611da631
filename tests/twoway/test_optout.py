"""Opt-out lists through the operator CLI and the partner API: a listed number gets 1011 in
its entry, is neither charged nor queued, and the rest of the request is unaffected."""

from __future__ import annotations

import asyncio
import os

from smsgw.client import AsyncClient, Client

from ..cli.test_operator_cli import smsgw
from ..client.conftest import smsgw as smsgw_client_command
from ..client.conftest import write_csv
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


def listed_numbers(response) -> list:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response-code"] == 200, body
    return body["optedout"]


def test_checkoptout_answers_the_callers_own_list_only(gateway: Gateway, tmp_path):
    database_url = gateway.operator.settings.database_url.raw
    gateway.operator.partner("p2", key="other-key-0123456789abcdef", shortcode="SC2")
    assert smsgw(tmp_path, database_url, "optout", "add", "p1", "--shortcode", "SC1", "0712000100").returncode == 0
    assert smsgw(tmp_path, database_url, "optout", "add", "p1", "0712000200").returncode == 0  # all of p1's shortcodes
    assert smsgw(tmp_path, database_url, "optout", "add", "p2", "0712000300").returncode == 0  # p2's, not p1's

    asked = ["+254712000200", "0712000300", "12", 712000100, "0712000400"]
    check = dict(CREDS, shortcode="SC1")
    assert listed_numbers(gateway.post("/api/services/checkoptout", dict(check, mobile=asked))) == ["+254712000200", 712000100]
    by_form = gateway.post("/api/services/checkoptout", data=dict(check, mobile="0712000100, 0712000300,0712000200"))
    assert listed_numbers(by_form) == ["0712000100", "0712000200"]
    by_query = gateway.get("/api/services/checkoptout", params=dict(check, mobile="254712000100"))
    assert listed_numbers(by_query) == ["254712000100"]
    # p2 asking about the same numbers sees its own list; p1 cannot ask about p2's shortcode.
    p2 = {"partnerID": "p2", "apikey": "other-key-0123456789abcdef", "shortcode": "SC2"}
    assert listed_numbers(gateway.post("/api/services/checkoptout", dict(p2, mobile=asked))) == ["0712000300"]
    foreign = gateway.post("/api/services/checkoptout", dict(CREDS, shortcode="SC2", mobile="0712000300")).json()
    assert foreign == {"response-code": 1001, "response-description": "Invalid sender id"}

    wrong_key = gateway.post("/api/services/checkoptout", dict(check, apikey="wrong-key-0123456789", mobile="0712000100")).json()
    assert wrong_key["response-code"] == 1006 and "optedout" not in wrong_key
    too_many = gateway.post("/api/services/checkoptout", dict(check, mobile=",".join(["0712000100"] * 1001))).json()
    assert too_many["response-code"] == 1104
    # The clients ask batch_size numbers a request and answer in input order.
    with Client(gateway.url, "p1", DEFAULT_KEY, "SC1", batch_size=2) as client:
        assert client.opted_out(asked) == ["+254712000200", "712000100"]

    async def ask_async() -> list[str]:
        async with AsyncClient(gateway.url, "p1", DEFAULT_KEY, "SC1", batch_size=1) as client:
            return await client.opted_out(["0712000400", "0712000100"])

    assert asyncio.run(ask_async()) == ["0712000100"]
    # Asking sends nothing and charges nothing.
    assert queued_numbers(gateway) == [] and gateway.operator.balance("p1") == 1000_00


def test_a_dry_run_with_the_connection_settings_reports_the_opted_out_rows(gateway: Gateway, tmp_path):
    database_url = gateway.operator.settings.database_url.raw
    gateway.operator.partner("p2", key="other-key-0123456789abcdef", shortcode="SC2")
    assert smsgw(tmp_path, database_url, "optout", "add", "p1", "--shortcode", "SC1", "0712000100").returncode == 0
    assert smsgw(tmp_path, database_url, "optout", "add", "p2", "0733000200").returncode == 0  # another partner's list
    rows = [["0712000100", "x" * 200], ["0733000200", "Short"], ["+254712000100", "Again"], ["0771000300", "Short"]]
    csv_path = write_csv(tmp_path / "dry.csv", ["mobile", "message"], rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    # The command runs in tmp_path: a relative PYTHONPATH (PYTHONPATH=src) must still name this tree.
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)
    env.update(SMSGW_URL=gateway.url, SMSGW_PARTNER_ID="p1", SMSGW_API_KEY=DEFAULT_KEY, SMSGW_SHORTCODE="SC1")
    done = smsgw_client_command(["send", "--csv", str(csv_path), "--dry-run"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    cells = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]] for line in done.stdout.splitlines() if "│" in line}
    assert cells == {"2 Airtel": ["1", "1", "1.00"], "3 Telkom": ["1", "1", "1.00"], "total": ["2", "2", "2.00"]}
    assert "opted out (the gateway answers them 1011" in done.stdout
    assert "not in the table): 2" in done.stdout and "line 2: 0712000100" in done.stdout and "line 4: +254712000100" in done.stdout
    assert DEFAULT_KEY not in done.stdout + done.stderr
    assert queued_numbers(gateway) == [] and gateway.operator.balance("p1") == 1000_00

    wrong_key = smsgw_client_command(["send", "--csv", str(csv_path), "--dry-run"], dict(env, SMSGW_API_KEY="wrong-key-0123456789"), tmp_path)
    assert wrong_key.returncode == 1 and "opt-out list could not be read: 1006 Invalid credentials" in wrong_key.stderr
    half = smsgw_client_command(["send", "--csv", str(csv_path), "--dry-run"], dict(env, SMSGW_API_KEY=""), tmp_path)
    assert half.returncode == 2 and "--api-key (or SMSGW_API_KEY)" in half.stderr


def test_a_dry_run_from_a_promotional_shortcode_counts_the_footer_as_acceptance_charges_it(gateway: Gateway, tmp_path):
    database_url = gateway.operator.settings.database_url.raw
    added = smsgw(tmp_path, database_url, "shortcode", "add", "PROMO", "--partner", "p1", "--promotional")
    assert added.returncode == 0, added.stderr
    # checkoptout says which shortcode is promotional and which footer each network appends.
    promo = gateway.post("/api/services/checkoptout", dict(CREDS, shortcode="PROMO", mobile="0712000001")).json()
    assert (promo["promotional"], promo["footers"]) == (True, {"1": "STOP*456*9*5#"})
    plain = gateway.post("/api/services/checkoptout", dict(CREDS, shortcode="SC1", mobile="0712000001")).json()
    assert (plain["promotional"], plain["footers"]) == (False, {})

    rows = [
        ["0712000001", "x" * 150],  # Safaricom: one part, two with " STOP*456*9*5#"
        ["0712000002", "y" * 100],  # Safaricom: one part with the footer too
        ["0733000003", "z" * 150],  # Airtel appends no footer
        ["0712000004", "w" * 910],  # Safaricom: six parts, seven with the footer: over the limit
    ]
    csv_path = write_csv(tmp_path / "promo.csv", ["mobile", "message"], rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)
    env.update(SMSGW_URL=gateway.url, SMSGW_PARTNER_ID="p1", SMSGW_API_KEY=DEFAULT_KEY, SMSGW_SHORTCODE="PROMO")
    dry = smsgw_client_command(["send", "--csv", str(csv_path), "--dry-run"], env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    cells = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]] for line in dry.stdout.splitlines() if "│" in line}
    assert cells == {"1 Safaricom": ["2", "3", "3.00"], "2 Airtel": ["1", "1", "1.00"], "total": ["3", "4", "4.00"]}
    assert "line 5: message with the opt-out footer needs 7 parts, the limit is 6" in dry.stdout
    assert "opt-out footer, which adds 1 parts" in dry.stdout
    transactional = smsgw_client_command(["send", "--csv", str(csv_path), "--dry-run"], dict(env, SMSGW_SHORTCODE="SC1"), tmp_path)
    cells = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]] for line in transactional.stdout.splitlines() if "│" in line}
    assert cells["total"] == ["4", "9", "9.00"] and "footer" not in transactional.stdout
    assert queued_numbers(gateway) == [] and gateway.operator.balance("p1") == 1000_00

    # The same rows sent for real are charged what the dry run said, and the same row is refused.
    sent = smsgw_client_command(["send", "--csv", str(csv_path)], env, tmp_path)
    assert "needs 7 parts, the limit is 6" in (tmp_path / "promo.results.csv").read_text(), sent.stdout + sent.stderr
    assert gateway.operator.balance("p1") == 1000_00 - 400
    assert sorted(queued_numbers(gateway)) == ["254712000001", "254712000002", "254733000003"]
