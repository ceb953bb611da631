"""Money: all-or-nothing charges, no overdraft under concurrency, idempotent retries."""

from __future__ import annotations

import asyncio

import httpx

from ..helpers import DEFAULT_KEY, Gateway, accept_groups, bulk, entry, single_sends_at_once

SENDBULK = "/api/services/sendbulk"


def test_credit_is_all_or_nothing_per_request(gateway: Gateway):
    gateway.operator.partner("tight", credits=300, shortcode="T")
    four = bulk(*[entry(f"071200000{i}", partner="tight", shortcode="T") for i in range(4)], entry("bad", partner="tight", shortcode="T"))
    out = gateway.post(SENDBULK, four).json()["responses"]
    assert [r["response-code"] for r in out] == [1004, 1004, 1004, 1004, 1003]
    assert out[0]["response-description"] == "Low bulk credits. Balance 3.00, required 4.00"
    assert out[0]["mobile"] == "0712000000"
    assert gateway.operator.balance("tight") == 300
    assert gateway.operator.sql("SELECT count(*) FROM messages WHERE partner_id = 'tight'") == [(0,)]
    three = bulk(*[entry(f"071200000{i}", partner="tight", shortcode="T") for i in range(3)])
    assert [r["response-code"] for r in gateway.post(SENDBULK, three).json()["responses"]] == [200, 200, 200]
    assert gateway.operator.balance("tight") == 0


def test_charge_ledger_and_messages_agree(gateway: Gateway):
    out = gateway.post(SENDBULK, bulk(entry("0712000001", "x" * 300), entry("0712000002"))).json()["responses"]
    ledger = gateway.operator.ledger("p1")
    assert [(e["kind"], e["amount"], e["balance_after"], e["message_count"]) for e in ledger] == [
        ("topup", 1000_00, 1000_00, 0),
        ("charge", -300, 1000_00 - 300, 2),
    ]
    ids = [int(r["messageid"]) for r in out]
    assert gateway.operator.sql("SELECT sum(cost), min(batch_id), max(batch_id) FROM messages") == [
        (300, ledger[1]["batch_id"], ledger[1]["batch_id"])
    ]
    assert ledger[1]["reference"] == f"sendbulk {ids[0]}..{ids[1]}"


def test_twenty_concurrent_requests_with_credit_for_five(gateway: Gateway):
    gateway.operator.partner("five", credits=5 * 300, shortcode="F")
    body = bulk(*[entry(f"07120000{i:02d}", partner="five", shortcode="F") for i in range(3)])

    async def fire():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[client.post(gateway.url + SENDBULK, json=body) for _ in range(20)])

    answers = [r.json()["responses"] for r in asyncio.run(fire())]
    accepted = [a for a in answers if all(r["response-code"] == 200 for r in a)]
    refused = [a for a in answers if all(r["response-code"] == 1004 for r in a)]
    assert len(accepted) == 5 and len(refused) == 15
    assert gateway.operator.balance("five") == 0
    assert gateway.operator.sql("SELECT count(*) FROM messages WHERE partner_id = 'five'") == [(15,)]
    balances = [e["balance_after"] for e in gateway.operator.ledger("five")]
    assert min(balances) >= 0 and balances[-1] == 0 and len(balances) == 6


def test_twenty_concurrent_single_messages_with_credit_for_five_share_commits(gateway: Gateway):
    gateway.operator.partner("five", credits=5 * 100, shortcode="F")
    fields = {"partnerID": "five", "apikey": DEFAULT_KEY, "shortcode": "F", "message": "one part", "mobile": "0712000001"}
    before = accept_groups(gateway)
    codes = [r.json()["responses"][0]["response-code"] for r in single_sends_at_once(gateway, fields, 20)]
    assert sorted(codes) == [200] * 5 + [1004] * 15
    assert gateway.operator.balance("five") == 0
    assert gateway.operator.sql("SELECT count(*) FROM messages WHERE partner_id = 'five'") == [(5,)]
    balances = [e["balance_after"] for e in gateway.operator.ledger("five")]
    assert balances == [500, 400, 300, 200, 100, 0]
    after = accept_groups(gateway)
    transactions, requests = after[0] - before[0], after[1] - before[1]
    assert requests == 20
    assert transactions < requests, "no two requests shared a commit"


def test_concurrent_single_messages_with_one_key_in_one_group_charge_once(gateway: Gateway):
    fields = {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "message": "otp 1234", "mobile": "0712000001"}
    before = accept_groups(gateway)
    answers = single_sends_at_once(gateway, fields, 12, headers={"Idempotency-Key": "otp-1"})
    assert len({r.content for r in answers}) == 1
    assert answers[0].json()["responses"][0]["response-code"] == 200
    assert gateway.operator.sql("SELECT count(*) FROM messages") == [(1,)]
    assert [e["kind"] for e in gateway.operator.ledger("p1")] == ["topup", "charge"]
    assert gateway.operator.balance("p1") == 1000_00 - 100
    after = accept_groups(gateway)
    # Requests that found the stored answer before charging never reached the group.
    assert after[0] - before[0] < after[1] - before[1], "no two requests with the key shared a commit"


def test_idempotency_key_returns_the_first_answer_and_charges_once(gateway: Gateway):
    body = bulk(entry("0712000001"), entry("0712000002"))
    headers = {"Idempotency-Key": "batch-42"}
    first = gateway.post(SENDBULK, body, headers=headers)
    again = gateway.post(SENDBULK, body, headers=headers)
    assert first.content == again.content
    assert gateway.operator.sql("SELECT count(*) FROM messages") == [(2,)]
    assert gateway.operator.balance("p1") == 1000_00 - 200
    different = gateway.post(SENDBULK, bulk(entry("0712000003")), headers=headers).json()
    assert different["response-code"] == 1010
    # Another key is another request.
    gateway.post(SENDBULK, body, headers={"Idempotency-Key": "batch-43"})
    assert gateway.operator.sql("SELECT count(*) FROM messages") == [(4,)]


def test_idempotency_key_is_per_partner(gateway: Gateway):
    gateway.operator.partner("p2", shortcode="SC2")
    headers = {"Idempotency-Key": "shared-key"}
    a = gateway.post(SENDBULK, bulk(entry()), headers=headers).json()["responses"][0]
    b = gateway.post(SENDBULK, bulk(entry(partner="p2", shortcode="SC2")), headers=headers).json()["responses"][0]
    assert a["response-code"] == b["response-code"] == 200 and a["messageid"] != b["messageid"]


def test_concurrent_retries_with_one_key_charge_once(gateway: Gateway):
    body = bulk(*[entry(f"07120000{i:02d}") for i in range(10)])

    async def fire():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[client.post(gateway.url + SENDBULK, json=body, headers={"Idempotency-Key": "same"}) for _ in range(8)])

    answers = {r.content for r in asyncio.run(fire())}
    assert len(answers) == 1
    assert gateway.operator.sql("SELECT count(*) FROM messages") == [(10,)]
    assert gateway.operator.balance("p1") == 1000_00 - 1000


def test_an_answer_that_accepted_nothing_is_not_replayed(gateway: Gateway):
    gateway.operator.partner("empty", credits=0, shortcode="E")
    body = bulk(entry(partner="empty", shortcode="E"))
    headers = {"Idempotency-Key": "after-topup"}
    assert gateway.post(SENDBULK, body, headers=headers).json()["responses"][0]["response-code"] == 1004
    gateway.operator.sql("UPDATE partners SET balance = 100 WHERE id = 'empty'")
    assert gateway.post(SENDBULK, body, headers=headers).json()["responses"][0]["response-code"] == 200
    assert gateway.post(SENDBULK, body, headers=headers).json()["responses"][0]["response-code"] == 200
    assert gateway.operator.sql("SELECT count(*) FROM messages WHERE partner_id = 'empty'") == [(1,)]


def test_idempotency_on_sendsms(gateway: Gateway):
    fields = {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "message": "hi", "mobile": "0712000001"}
    first = gateway.client.post(gateway.url + "/api/services/sendsms", data=fields, headers={"Idempotency-Key": "s1"})
    again = gateway.client.post(gateway.url + "/api/services/sendsms", data=fields, headers={"Idempotency-Key": "s1"})
    assert first.content == again.content
    assert gateway.operator.sql("SELECT count(*) FROM messages") == [(1,)]


def test_unusable_idempotency_key(gateway: Gateway):
    response = gateway.post(SENDBULK, bulk(entry()), headers={"Idempotency-Key": "k" * 300})
    assert response.json()["response-code"] == 1010
