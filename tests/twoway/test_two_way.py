"""Two-way messaging over TCP: the simulated carrier sends subscribers' messages as
deliver_sm to a bound gateway, which stores, routes and forwards them to partners' real HTTP
endpoints on loopback, and sends their answers back as charged messages."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from urllib.parse import parse_qsl

import httpx
import orjson

from smsgw.store import inbound, optout

from ..dispatch.conftest import Rig, number
from ..helpers import DEFAULT_KEY, entry, wait_for
from .conftest import PartnerEndpoint, two_way

SECRET = "inbound-secret-for-the-test"


def signed(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


async def getinbox(rig: Rig, partner: str = "p1", **fields) -> dict:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(rig.api_url + "/api/services/getinbox", json={"partnerID": partner, "apikey": DEFAULT_KEY, **fields})
    return response.json()


async def test_dedicated_shortcode_forwards_signed_and_the_answer_goes_back_charged(rig: Rig):
    endpoint = PartnerEndpoint(reply="Thanks, your balance is 42")
    await rig.store.set_callback("p1", None, SECRET)
    await rig.store.write(inbound.set_endpoint, "p1", endpoint.url, "POST", True)
    before = rig.operator.balance("p1")
    try:
        async with two_way(rig):
            rig.simulator.send_inbound("254712000500", "SC1", "Balance please")
            await wait_for(lambda: any(r.destination == "254712000500" for r in rig.simulator.received))
    finally:
        endpoint.close()
    (request,) = endpoint.requests
    assert request["method"] == "POST"
    assert orjson.loads(request["body"]) == {"shortcode": "SC1", "mobile": "254712000500", "message": "Balance please"}
    assert request["signature"] == signed(SECRET, request["body"])
    (reply,) = [r for r in rig.simulator.received if r.destination == "254712000500"]
    assert (reply.source, reply.text) == ("SC1", "Thanks, your balance is 42")
    assert rig.operator.balance("p1") == before - 100
    rows = rig.operator.sql("SELECT forwarded_at IS NOT NULL, reply_id FROM inbound_messages")
    assert rows[0][0] == 1 and rig.operator.sql("SELECT msisdn, shortcode FROM messages WHERE id = :i", {"i": rows[0][1]}) == [
        ("254712000500", "SC1")
    ]
    inbox = await getinbox(rig)
    assert inbox["response-code"] == 200
    (message,) = inbox["messages"]
    assert (message["shortcode"], message["mobile"], message["message"], message["forwarded"], message["complete"]) == (
        "SC1",
        "254712000500",
        "Balance please",
        True,
        True,
    )


async def test_shared_shortcode_routes_by_keyword_over_get_and_keeps_unrouted_messages(rig: Rig):
    rig.operator.partner("p2", credits=1000_00)
    rig.operator.partner("p3", credits=1000_00)
    endpoint = PartnerEndpoint(reply="You are subscribed")
    other = PartnerEndpoint()
    await rig.store.set_callback("p2", None, SECRET)
    await rig.store.write(inbound.set_endpoint, "p2", endpoint.url + "?source=smsgw", "GET", True)
    await rig.store.write(inbound.set_endpoint, "p3", other.url, "POST", False)
    await rig.store.write(optout.add_keyword, "22000", "NEWS", "p2", 0)
    await rig.store.write(optout.add_keyword, "22000", "JOBS", "p3", 0)
    try:
        async with two_way(rig):
            rig.simulator.send_inbound("254712000600", "22000", "news sports")
            rig.simulator.send_inbound("254712000601", "22000", "Hello there")
            await wait_for(lambda: any(r.destination == "254712000600" for r in rig.simulator.received))
            await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM inbound_messages") == [(2,)])
    finally:
        endpoint.close()
        other.close()
    (request,) = endpoint.requests
    assert request["method"] == "GET" and request["body"] == b""
    query = request["query"]
    assert query.startswith("source=smsgw&")
    signed_part = query.removeprefix("source=smsgw&")
    assert dict(parse_qsl(signed_part)) == {"shortcode": "22000", "msisdn": "254712000600", "message": "news sports", "partnerId": "p2"}
    assert request["signature"] == signed(SECRET, signed_part.encode())
    assert other.requests == []  # JOBS's partner gets nothing of NEWS
    (reply,) = [r for r in rig.simulator.received if r.destination == "254712000600"]
    assert (reply.source, reply.text) == ("22000", "You are subscribed")
    assert rig.operator.balance("p2") == 1000_00 - 100
    # Nobody owns "Hello": kept for the operator, never forwarded.
    assert rig.operator.sql("SELECT partner_id, next_attempt_at FROM inbound_messages WHERE msisdn = '254712000601'") == [(None, None)]
    assert [m["message"] for m in (await getinbox(rig, "p2"))["messages"]] == ["news sports"]
    assert (await getinbox(rig, "p1"))["messages"] == []


async def test_a_three_part_message_out_of_order_over_two_binds_arrives_once_whole(rig: Rig):
    endpoint = PartnerEndpoint()
    await rig.store.write(inbound.set_endpoint, "p1", endpoint.url, "POST", False)
    text = "".join(f"word{i:03d} " for i in range(50)).strip()  # 349 GSM-7 characters: three parts
    try:
        async with two_way(rig, binds=2):
            for concatenation, reference in (("udh", 7), ("sar", 513)):
                parts = rig.simulator.send_inbound(
                    "254712000700", "SC1", text, concatenation=concatenation, reference=reference, order=[2, 0, 1], spread=True
                )
                assert parts == 3
            await wait_for(lambda: len(endpoint.requests) == 2)
    finally:
        endpoint.close()
    assert [orjson.loads(r["body"])["message"] for r in endpoint.requests] == [text, text]
    assert rig.operator.sql("SELECT parts, complete FROM inbound_messages") == [(3, 1), (3, 1)]
    assert rig.operator.sql("SELECT count(*) FROM inbound_parts WHERE message_id IS NULL") == [(0,)]


async def test_an_unreachable_endpoint_is_retried_and_the_message_is_in_getinbox_meanwhile(rig_factory):
    rig: Rig = await rig_factory(env={"SMSGW_CALLBACK_RETRY_BASE_SECONDS": "0.2"})
    endpoint = PartnerEndpoint()
    url = endpoint.url
    endpoint.close()  # nothing listens there now
    await rig.store.write(inbound.set_endpoint, "p1", url, "POST", True)
    async with two_way(rig):
        rig.simulator.send_inbound("254712000800", "SC1", "Anyone there?")
        await wait_for(lambda: rig.operator.sql("SELECT attempts >= 2 FROM inbound_messages") == [(1,)])
        inbox = await getinbox(rig)
    (message,) = inbox["messages"]
    assert (message["message"], message["forwarded"]) == ("Anyone there?", False)
    ((error,),) = rig.operator.sql("SELECT last_error FROM inbound_messages")
    assert "Connect" in error


async def test_stop_then_start(rig: Rig):
    async with two_way(rig):
        rig.simulator.send_inbound("254712000900", "SC1", "Stop")
        await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM optouts") == [(1,)])
        before = rig.operator.balance("p1")
        answers = await rig.send([entry("0712000900"), entry(number(1)), entry(number(2))])
        assert [a["response-code"] for a in answers] == [1011, 200, 200]
        assert rig.operator.balance("p1") == before - 200
        rig.simulator.send_inbound("254712000900", "SC1", "START")
        await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM optouts") == [(0,)])
        (again,) = await rig.send([entry("0712000900")])
        assert again["response-code"] == 200
        # STOPALL lists the number for every shortcode of the partner.
        rig.simulator.send_inbound("254712000900", "SC1", "stopall")
        await wait_for(lambda: rig.operator.sql("SELECT shortcode, source FROM optouts") == [("*", "keyword")])


async def test_a_blacklisted_receipt_lists_the_number(rig_factory):
    rig: Rig = await rig_factory(behaviour="blacklisted", test_numbers=False)
    async with two_way(rig):
        (answer,) = await rig.send([entry(number(3))])
        await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM optouts") == [(1,)])
    assert (await rig.dlr(answer["messageid"]))["delivery-description"] == "SenderName Blacklisted"
    assert rig.operator.sql("SELECT partner_id, shortcode, msisdn, source FROM optouts") == [("p1", "SC1", answer["mobile"], "receipt")]
    (refused,) = await rig.send([entry(number(3))])
    assert refused["response-code"] == 1011


async def test_a_promotional_message_waits_for_the_window_and_carries_the_footer(rig_factory):
    import dataclasses
    import datetime as dt
    import time

    rig: Rig = await rig_factory(env={"SMSGW_PROMO_WINDOW": "08:00-18:00"})
    await rig.store.write(optout.set_promotional, "SC1", True)
    # The gateway's clock reads 07:59:55 in Nairobi: the window opens five seconds from now.
    now = time.time()
    local = dt.datetime.fromtimestamp(now, rig.settings.timezone)
    before_opening = local.replace(hour=7, minute=59, second=55, microsecond=0).timestamp()
    settings = dataclasses.replace(rig.settings, clock_offset_seconds=before_opening - now)
    from ..helpers import LiveServer

    before = rig.operator.balance("p1")
    text = "x" * 150  # one part alone; with " STOP*456*9*5#" (14 characters) two
    with LiveServer(settings) as server:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                server.url + "/api/services/sendbulk", json={"count": 2, "smslist": [entry(number(4), text), entry("0733000400", "Offer")]}
            )
        safaricom, airtel = response.json()["responses"]
        async with httpx.AsyncClient(timeout=30) as client:
            otp = await client.post(
                server.url + "/api/services/sendotp",
                json={"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "mobile": "0712000450", "message": "Code 1234"},
            )
    assert safaricom["response-code"] == 200 and airtel["response-code"] == 200
    # A one-time password from the same shortcode goes out at once, as written.
    assert rig.operator.sql("SELECT text, due_at <= :now FROM messages WHERE msisdn = '254712000450'", {"now": round(time.time() * 1000)}) == [
        ("Code 1234", 1)
    ]
    assert otp.json()["responses"][0]["response-code"] == 200
    before -= 100
    assert rig.operator.balance("p1") == before - 200 - 100  # the footer took the Safaricom message to two parts
    rows = dict(rig.operator.sql("SELECT msisdn, text FROM messages"))
    assert rows[safaricom["mobile"]] == text + " STOP*456*9*5#"
    assert rows[airtel["mobile"]] == "Offer"  # Airtel has no footer in the default table
    opening_ms = round((now + 5) * 1000)
    promotional = {safaricom["mobile"], airtel["mobile"]}
    held = "SELECT state, due_at FROM messages WHERE msisdn IN ('{}', '{}')".format(*tuple(promotional))
    assert set(rig.operator.sql(held)) == {(1, opening_ms)}
    async with two_way(rig):
        while time.time() < now + 4:  # outside the window: they stay Scheduled and do not go out
            assert not promotional & {r.destination for r in rig.simulator.received}
            assert {state for state, _ in rig.operator.sql(held)} == {1}
            await asyncio.sleep(0.2)
        assert "254712000450" in {r.destination for r in rig.simulator.received}
        await wait_for(lambda: promotional <= {r.destination for r in rig.simulator.received}, timeout=20)
    sent = "".join(r.text for r in rig.simulator.received if r.destination == safaricom["mobile"])
    assert sent.endswith("STOP*456*9*5#") and sent == rows[safaricom["mobile"]]
    assert len([r for r in rig.simulator.received if r.destination == safaricom["mobile"]]) == 2
