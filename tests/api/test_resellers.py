"""Resellers over a real server: `credit` as the contract shows it, child accounts, and what a
reseller can and cannot read of its children."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ..helpers import Gateway, bulk, entry

CREDIT = "/api/services/credit"
CHILDREN = "/api/services/getchildren"
CHILD_INVALID = b'{"response-code":1005,"response-description":"The child acount is invalid. Kindly verify the details"}'
RESELLER_KEY = "reseller-key-0123456789"
CHILD_KEY = "child-key-0123456789abc"


@pytest.fixture
def resellers(gateway: Gateway) -> Gateway:
    """Reseller R1 (100 units) with child CHILD (524 units, rate 1); reseller R2 with child OTHER."""
    gateway.operator.partner("R1", credits=100_00, key=RESELLER_KEY)
    gateway.operator.partner("CHILD", credits=524_00, key=CHILD_KEY, parent="R1", shortcode="CH")
    gateway.operator.partner("R2", credits=100_00, key=RESELLER_KEY)
    gateway.operator.partner("OTHER", credits=0, parent="R2")
    return gateway


def credit(gateway: Gateway, child: str, amount, partner: str = "R1", key: str = RESELLER_KEY, **kwargs) -> httpx.Response:
    return gateway.post(CREDIT, {"apikey": key, "partnerID": partner, "childID": child, "amount": amount}, **kwargs)


def test_credit_answers_the_contract_example_byte_for_byte(resellers: Gateway):
    answer = credit(resellers, "CHILD", 5)
    assert answer.status_code == 200
    assert answer.content == (
        b'{"response-code":200,"response-description":"Partner ID CHILD has been credited with 5 units",'
        b'"prev-balance":"524.00","sms-units":"5","new-balance":"529.00"}'
    )
    assert resellers.operator.balance("CHILD") == 529_00 and resellers.operator.balance("R1") == 95_00


def test_a_transfer_is_two_ledger_entries_that_name_each_other(resellers: Gateway):
    credit(resellers, "CHILD", "7.50")
    out = resellers.operator.ledger("R1")[-1]
    received = resellers.operator.ledger("CHILD")[-1]
    assert (out["kind"], out["amount"], out["balance_after"]) == ("transfer_out", -750, 92_50)
    assert (received["kind"], received["amount"], received["balance_after"]) == ("transfer_in", 750, 531_50)
    assert out["counterpart_id"] == received["id"] and received["counterpart_id"] == out["id"]


@pytest.mark.parametrize(
    ("child", "partner", "key"),
    [
        ("OTHER", "R1", RESELLER_KEY),
        ("R1", "R1", RESELLER_KEY),
        ("R2", "R1", RESELLER_KEY),
        ("CHILD", "R2", RESELLER_KEY),
        ("R1", "CHILD", CHILD_KEY),
    ],
    ids=["another-resellers-child", "itself", "another-reseller", "not-its-child", "child-to-its-parent"],
)
def test_a_child_that_is_not_the_callers_gets_the_contracts_1005(resellers: Gateway, child, partner, key):
    before = {p: resellers.operator.balance(p) for p in ("R1", "R2", "CHILD", "OTHER")}
    answer = credit(resellers, child, 5, partner=partner, key=key)
    assert answer.status_code == 200 and answer.content == CHILD_INVALID
    assert {p: resellers.operator.balance(p) for p in before} == before


def test_a_child_id_no_account_has_gets_4093(resellers: Gateway):
    before = resellers.operator.balance("R1")
    answer = credit(resellers, "NOBODY", 5)
    assert answer.status_code == 200
    assert answer.json() == {"response-code": 4093, "response-description": "Details Not Found. no partner NOBODY"}
    assert resellers.operator.balance("R1") == before


@pytest.mark.parametrize(
    ("rate", "amount", "units", "moved"),
    [(100, 5, "5", 500), (80, "10", "12.50", 1250), (300, "1", "0.33", 33), (100, "0.01", "0.01", 1), (250, 12.5, "5", 500)],
    ids=["rate-1", "rate-0.80", "rounded-down", "smallest", "json-float"],
)
def test_units_are_the_amount_over_the_rate_rounded_down(gateway: Gateway, rate, amount, units, moved):
    gateway.operator.partner("R1", credits=100_00, key=RESELLER_KEY)
    gateway.operator.partner("KID", credits=0, parent="R1", rate=rate)
    answer = credit(gateway, "KID", amount).json()
    assert answer["sms-units"] == units and answer["response-description"] == f"Partner ID KID has been credited with {units} units"
    assert gateway.operator.balance("KID") == moved and gateway.operator.balance("R1") == 100_00 - moved


@pytest.mark.parametrize(
    "amount",
    [0, -5, "0.00", "1.234", True, None, "abc", "", [5], {"a": 1}, 1e12, "10000000.01", "1e3", 0.1 + 0.2],
    ids=[
        "zero",
        "negative",
        "zero-text",
        "three-decimals",
        "bool",
        "missing",
        "text",
        "empty",
        "list",
        "object",
        "huge",
        "over-bound",
        "exponent",
        "float-noise",
    ],
)
def test_a_bad_amount_is_1009_and_moves_nothing(resellers: Gateway, amount):
    answer = credit(resellers, "CHILD", amount).json()
    assert answer["response-code"] == 1009 and answer["response-description"].startswith("Unsupported data type")
    assert resellers.operator.balance("R1") == 100_00 and resellers.operator.balance("CHILD") == 524_00


def test_a_bad_child_id_is_1009_and_an_amount_too_small_for_the_rate_too(resellers: Gateway):
    for child in (None, True, [1]):
        assert credit(resellers, child, 5).json()["response-code"] == 1009
    resellers.operator.partner("DEAR", credits=0, parent="R1", rate=300)
    assert credit(resellers, "DEAR", "0.02").json()["response-code"] == 1009
    assert resellers.operator.balance("R1") == 100_00


def test_a_reseller_without_the_units_gets_1004(resellers: Gateway):
    answer = credit(resellers, "CHILD", "100.01").json()
    assert answer == {"response-code": 1004, "response-description": "Low bulk credits. Balance 100.00, required 100.01"}
    assert resellers.operator.balance("R1") == 100_00 and resellers.operator.balance("CHILD") == 524_00


def test_wrong_credentials_move_nothing(resellers: Gateway):
    assert credit(resellers, "CHILD", 5, key="wrong-key-0123456789").json()["response-code"] == 1006
    assert resellers.operator.balance("CHILD") == 524_00


def test_twenty_concurrent_transfers_with_units_for_five(gateway: Gateway):
    gateway.operator.partner("R1", credits=5_00, key=RESELLER_KEY)
    gateway.operator.partner("KID", credits=0, parent="R1")

    async def fire():
        async with httpx.AsyncClient(timeout=60) as client:
            body = {"apikey": RESELLER_KEY, "partnerID": "R1", "childID": "KID", "amount": 1}
            return await asyncio.gather(*[client.post(gateway.url + CREDIT, json=body) for _ in range(20)])

    codes = [r.json()["response-code"] for r in asyncio.run(fire())]
    assert codes.count(200) == 5 and codes.count(1004) == 15
    assert gateway.operator.balance("R1") == 0 and gateway.operator.balance("KID") == 5_00
    assert min(e["balance_after"] for e in gateway.operator.ledger("R1")) >= 0
    assert len(gateway.operator.ledger("KID")) == 5


def test_an_idempotency_key_moves_the_credit_once(resellers: Gateway):
    headers = {"Idempotency-Key": "invoice-9"}
    first = credit(resellers, "CHILD", 5, headers=headers)
    again = credit(resellers, "CHILD", 5, headers=headers)
    assert first.content == again.content and b"524.00" in again.content
    assert resellers.operator.balance("CHILD") == 529_00 and resellers.operator.balance("R1") == 95_00
    assert credit(resellers, "CHILD", 6, headers=headers).json()["response-code"] == 1010
    assert resellers.operator.balance("CHILD") == 529_00


def test_concurrent_retries_with_one_idempotency_key_move_the_credit_once(resellers: Gateway):
    async def fire():
        async with httpx.AsyncClient(timeout=60) as client:
            body = {"apikey": RESELLER_KEY, "partnerID": "R1", "childID": "CHILD", "amount": 5}
            return await asyncio.gather(*[client.post(gateway_url + CREDIT, json=body, headers={"Idempotency-Key": "k"}) for _ in range(10)])

    gateway_url = resellers.url
    answers = asyncio.run(fire())
    assert len({a.content for a in answers}) == 1 and answers[0].json()["new-balance"] == "529.00"
    assert resellers.operator.balance("CHILD") == 529_00 and resellers.operator.balance("R1") == 95_00


def test_getchildren_lists_balances_and_figures_never_keys(resellers: Gateway):
    sent = resellers.post(
        "/api/services/sendbulk", bulk(*[entry(f"07120000{i:02d}", partner="CHILD", key=CHILD_KEY, shortcode="CH") for i in range(3)])
    )
    assert all(r["response-code"] == 200 for r in sent.json()["responses"])
    credit(resellers, "CHILD", 10)
    answer = resellers.post(CHILDREN, {"apikey": RESELLER_KEY, "partnerID": "R1"})
    assert answer.json() == {
        "response-code": 200,
        "response-description": "Success",
        "partner-id": "R1",
        "period-days": 30,
        "children": [
            {
                "partner-id": "CHILD",
                "name": "CHILD",
                "status": "active",
                "credit": "531.00",
                "rate": "1.00",
                "messages-accepted": 3,
                "units-charged": "3.00",
                "messages-refunded": 0,
                "units-refunded": "0.00",
                "units-received": "10.00",
            }
        ],
    }
    stored_hash = resellers.operator.sql("SELECT api_key_hash FROM partners WHERE id = 'CHILD'")[0][0]
    assert CHILD_KEY.encode() not in answer.content and stored_hash.encode() not in answer.content
    assert resellers.post(CHILDREN, {"apikey": CHILD_KEY, "partnerID": "CHILD"}).json()["children"] == []
    assert resellers.post(CHILDREN, {"apikey": RESELLER_KEY, "partnerID": "R1", "days": 0}).json()["response-code"] == 1009


def test_a_reseller_never_reads_a_childs_messages(resellers: Gateway):
    sent = resellers.post("/api/services/sendbulk", bulk(entry(partner="CHILD", key=CHILD_KEY, shortcode="CH"))).json()["responses"][0]
    as_reseller = {"apikey": RESELLER_KEY, "partnerID": "R1", "messageID": sent["messageid"]}
    unknown = resellers.post("/api/services/getdlr", dict(as_reseller, messageID="99999999999"))
    assert resellers.post("/api/services/getdlr", as_reseller).content == unknown.content
    assert resellers.post("/api/services/cancel", as_reseller).content == unknown.content
    assert b"1008" in unknown.content
    assert resellers.operator.sql(f"SELECT state FROM messages WHERE id = {sent['messageid']}") == [(1,)]


def test_the_reseller_endpoints_are_documented(gateway: Gateway):
    paths = gateway.get("/openapi.json").json()["paths"]
    for name in ("credit", "getchildren", "cancel"):
        assert set(paths[f"/api/services/{name}"]) == {"post"}
