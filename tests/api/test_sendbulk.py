"""sendbulk over a real HTTP server: the seed's sample, normalisation, parts, prices."""

from __future__ import annotations

import base64
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from ..helpers import DEFAULT_KEY, Gateway, LiveServer, Operator, bulk, entry, make_settings

# The sample body of spec/sendbulk-api.txt exactly as written there, with its placeholders
# filled and its `//` remarks removed: note the repeated "pass_type" key of the second entry
# and the clientsmsid numbers.
SEED_SAMPLE = b"""{
"count": 2,
"smslist": [
{
"partnerID": "p1",
"apikey": "test-key-0123456789abcdef",
"pass_type": "plain",
"clientsmsid": 1234,
"mobile": "0712345678",
"message": "Hello from the seed sample",
"shortcode": "SC1"
},
{
"partnerID": "p1",
"apikey": "test-key-0123456789abcdef",
"pass_type": "plain",
"mobile": "+254733123456",
"clientsmsid": 1235,
"message": "Second message",
"shortcode": "SC1",
"pass_type": "plain"
}
]
}"""


def results(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["responses"]


def test_seed_sample_body_is_accepted_as_written(gateway: Gateway):
    response = gateway.post("/api/services/sendbulk", content=SEED_SAMPLE, headers={"Content-Type": "application/json"})
    first, second = results(response)
    assert first == {
        "response-code": 200,
        "response-description": "Success",
        "mobile": "254712345678",
        "messageid": first["messageid"],
        "clientsmsid": 1234,
        "networkid": 1,
    }
    assert second["response-code"] == 200 and second["mobile"] == "254733123456" and second["networkid"] == 2
    assert second["clientsmsid"] == 1235
    assert first["messageid"].isdigit() and second["messageid"].isdigit() and first["messageid"] != second["messageid"]
    stored = gateway.operator.sql("SELECT id, msisdn, network_id, text, clientsmsid FROM messages ORDER BY id")
    assert stored == [
        (int(first["messageid"]), "254712345678", 1, "Hello from the seed sample", "1234"),
        (int(second["messageid"]), "254733123456", 2, "Second message", "1235"),
    ]
    assert gateway.operator.balance("p1") == 1000_00 - 200


def test_a_comment_in_the_body_is_not_json(gateway: Gateway):
    with_remark = SEED_SAMPLE.replace(b'"count": 2,', b'"count": 2,// The count of the SMS list')
    body = gateway.post("/api/services/sendbulk", content=with_remark).json()
    assert body["response-code"] == 1010


def test_numbers_arrive_as_strings_or_numbers_and_clientsmsid_keeps_its_type(gateway: Gateway):
    gateway.operator.partner("12345", shortcode="NUM")
    body = {
        "count": "3",
        "smslist": [
            entry(254712345678, partner=12345, shortcode="NUM", clientsmsid="abc-1"),
            entry("712345679", partner=12345, shortcode="NUM", clientsmsid=77),
            entry("+254 (0)712-345-680", partner=12345, shortcode="NUM"),
        ],
    }
    out = results(gateway.post("/api/services/sendbulk", body))
    assert [r["response-code"] for r in out] == [200, 200, 200]
    assert [r["mobile"] for r in out] == ["254712345678", "254712345679", "254712345680"]
    assert out[0]["clientsmsid"] == "abc-1" and out[1]["clientsmsid"] == 77 and "clientsmsid" not in out[2]


def test_results_keep_input_order_and_only_valid_entries_are_charged(gateway: Gateway):
    entries = [
        entry("0712000001"),
        entry("not a number", clientsmsid=2),
        entry("0733000003", message="x" * 161),  # two GSM-7 parts on Airtel
        entry("0712000004", message=""),
        entry("0770000005", message="Ω" * 10 + "€"),  # GSM-7 with an extension char, Telkom
        entry("0712000006", message="Привет"),  # UCS-2
    ]
    out = results(gateway.post("/api/services/sendbulk", bulk(*entries)))
    assert [r["response-code"] for r in out] == [200, 1003, 200, 1009, 200, 200]
    assert out[1]["mobile"] == "not a number" and out[1]["clientsmsid"] == 2
    assert [r.get("networkid") for r in out] == [1, None, 2, None, 3, 1]
    assert gateway.operator.balance("p1") == 1000_00 - 500  # 1 + 2 + 1 + 1 parts at 1 unit
    parts = gateway.operator.sql("SELECT msisdn, parts, data_coding, cost FROM messages ORDER BY id")
    assert parts == [
        ("254712000001", 1, 0, 100),
        ("254733000003", 2, 0, 200),
        ("254770000005", 1, 0, 100),
        ("254712000006", 1, 8, 100),
    ]


def test_part_limit_and_concatenated_sizes(gateway: Gateway):
    cases = [
        ("a" * 160, 200, 1),
        ("a" * 161, 200, 2),
        ("a" * 153 * 6, 200, 6),
        ("a" * (153 * 6 + 1), 1009, None),
        ("€" * 80, 200, 1),  # 160 septets
        ("€" * 81, 200, 2),
        ("ж" * 70, 200, 1),
        ("ж" * 71, 200, 2),
        ("ж" * 67 * 6, 200, 6),
        ("ж" * (67 * 6 + 1), 1009, None),
    ]
    out = results(gateway.post("/api/services/sendbulk", bulk(*[entry(f"07120000{i:02d}", text) for i, (text, _, _) in enumerate(cases)])))
    assert [r["response-code"] for r in out] == [code for _, code, _ in cases]
    stored = [p for (p,) in gateway.operator.sql("SELECT parts FROM messages ORDER BY id")]
    assert stored == [parts for _, code, parts in cases if code == 200]


def test_per_network_price_from_the_network_table(tmp_path, database_url):
    table = tmp_path / "networks.toml"
    table.write_text(
        'default_region = "KE"\n'
        '[[networks]]\nid = 1\nname = "Safaricom"\nregion = "KE"\ncarriers = ["Safaricom"]\nprice = "0.80"\n'
        '[[networks]]\nid = 2\nname = "Airtel"\nregion = "KE"\ncarriers = ["Airtel"]\nprice = "1.25"\n'
    )
    settings = make_settings(database_url, SMSGW_NETWORKS_FILE=str(table))
    operator = Operator(settings)
    operator.partner("p1", credits=10_00, shortcode="SC1")
    with LiveServer(settings) as server, httpx.Client() as client:
        out = client.post(
            server.url + "/api/services/sendbulk",
            json=bulk(entry("0712000001", "x" * 200), entry("0733000002"), entry("0770000003")),
        ).json()["responses"]
        balance = client.post(server.url + "/api/services/getbalance", json={"partnerID": "p1", "apikey": DEFAULT_KEY}).json()
    # Telkom is not in this table: no route.
    assert [r["response-code"] for r in out] == [200, 200, 1002]
    assert operator.balance("p1") == 10_00 - (2 * 80 + 125)
    assert balance["credit"] == "7.15"


def test_bm5_pass_type_sends_the_key_base64_encoded(gateway: Gateway):
    encoded = base64.b64encode(DEFAULT_KEY.encode()).decode()
    ok = gateway.post("/api/services/sendbulk", bulk(entry(key=encoded, pass_type="bm5"))).json()
    assert ok["responses"][0]["response-code"] == 200
    plain_as_bm5 = gateway.post("/api/services/sendbulk", bulk(entry(pass_type="bm5"))).json()
    assert plain_as_bm5["response-code"] == 1006
    unknown = gateway.post("/api/services/sendbulk", bulk(entry(pass_type="md5"))).json()
    assert unknown["response-code"] == 1009


def test_credentials_and_shortcode_come_from_the_first_entry(gateway: Gateway):
    gateway.operator.partner("p2", shortcode="SC2")
    out = gateway.post(
        "/api/services/sendbulk",
        bulk(entry("0712000001"), entry("0712000002", partner="p2", key="wrong", shortcode="SC2")),
    ).json()["responses"]
    assert [r["response-code"] for r in out] == [200, 200]
    assert gateway.operator.sql("SELECT DISTINCT partner_id, shortcode FROM messages") == [("p1", "SC1")]


def test_shortcode_is_case_sensitive_and_must_be_the_partners(gateway: Gateway):
    assert gateway.post("/api/services/sendbulk", bulk(entry(shortcode="sc1"))).json()["response-code"] == 1001
    assert gateway.post("/api/services/sendbulk", bulk(entry(shortcode="NOPE"))).json()["response-code"] == 1001
    missing = entry()
    del missing["shortcode"]
    assert gateway.post("/api/services/sendbulk", bulk(missing)).json()["response-code"] == 1001


def test_shortcode_enabled_on_some_networks_only(gateway: Gateway):
    gateway.operator.partner("p3", shortcode="SAF", networks=[1])
    out = gateway.post(
        "/api/services/sendbulk", bulk(entry("0712000001", partner="p3", shortcode="SAF"), entry("0733000002", partner="p3", shortcode="SAF"))
    ).json()["responses"]
    assert [r["response-code"] for r in out] == [200, 1002]


def test_suspended_partner_gets_invalid_credentials(gateway: Gateway):
    gateway.operator.suspend("p1")
    assert gateway.post("/api/services/sendbulk", bulk(entry())).json()["response-code"] == 1006


def test_time_to_send_in_both_forms(gateway: Gateway):
    zone = ZoneInfo("Africa/Nairobi")
    in_an_hour = int(time.time()) + 3600
    local = datetime.fromtimestamp(in_an_hour + 60, zone).strftime("%Y-%m-%d %H:%M")
    out = results(
        gateway.post(
            "/api/services/sendbulk",
            bulk(
                entry("0712000001", timeToSend=in_an_hour),
                entry("0712000002", timeToSend=str(in_an_hour)),
                entry("0712000003", timeToSend=local),
                entry("0712000004", timeToSend="2001-01-01 10:00"),
                entry("0712000005", timeToSend="next tuesday"),
                entry("0712000006", timeToSend="2026-02-30 10:00"),
            ),
        )
    )
    assert [r["response-code"] for r in out] == [200, 200, 200, 200, 1009, 1009]
    due = dict(gateway.operator.sql("SELECT msisdn, due_at - created_at FROM messages"))
    assert abs(due["254712000001"] - 3600_000) < 5000
    assert due["254712000002"] == due["254712000001"]
    expected_local = int(datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp() * 1000)
    created = dict(gateway.operator.sql("SELECT msisdn, created_at FROM messages"))
    assert due["254712000003"] == expected_local - created["254712000003"]
    assert due["254712000004"] == 0  # past: send now


def test_trailing_slash_is_the_same_endpoint(gateway: Gateway):
    for path in ("/api/services/sendbulk", "/api/services/sendbulk/"):
        assert results(gateway.post(path, bulk(entry())))[0]["response-code"] == 200


def test_legacy_respose_code_setting(database_url):
    settings = make_settings(database_url, SMSGW_LEGACY_RESPOSE_CODE="true")
    Operator(settings).partner("p1", shortcode="SC1")
    with LiveServer(settings) as server, httpx.Client() as client:
        ok = client.post(server.url + "/api/services/sendbulk", json=bulk(entry())).json()["responses"][0]
        bad = client.post(server.url + "/api/services/sendbulk", json=bulk(entry(key="nope"))).json()
    assert ok["respose-code"] == ok["response-code"] == 200
    assert bad["respose-code"] == bad["response-code"] == 1006
