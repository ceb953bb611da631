"""The Python client against a real gateway on loopback: results, typed errors, tolerance of
other providers' answers, streaming, and the asyncio twin."""

from __future__ import annotations

import orjson
import pytest

from smsgw.client import (
    NO_RETRIES,
    AsyncClient,
    Client,
    InvalidCredentials,
    InvalidSenderId,
    Message,
    NoDeliveryReport,
    RetryPolicy,
    TryAgainLater,
)

from ..helpers import DEFAULT_KEY
from .conftest import FAKE_4090, FORWARD, PARTNER, SHORTCODE, kenyan_number


def messages(count: int, start: int = 0):
    return ({"mobile": kenyan_number(i), "message": f"Hello {i}", "clientsmsid": i} for i in range(start, start + count))


def client_for(url: str, shortcode: str = SHORTCODE, **options) -> Client:
    return Client(url, PARTNER, DEFAULT_KEY, shortcode=shortcode, **options)


def test_send_bulk_of_2500_goes_as_three_requests_in_input_order(gw):
    with client_for(gw.url) as sms:
        results = sms.send_bulk(messages(2500))
    assert len(results) == 2500
    assert [r.clientsmsid for r in results] == list(range(2500))
    assert all(r.ok and r.network_id == 1 for r in results)
    assert [r.mobile for r in results[:2]] == ["254710000000", "254710000001"]
    assert len({r.message_id for r in results}) == 2500
    assert sorted(c["message_count"] for c in gw.charges()) == [500, 1000, 1000]  # concurrent: any order
    assert gw.message_count() == 2500


def test_per_message_failures_are_results_not_exceptions(gw):
    batch = [Message(kenyan_number(1), "ok", "a"), Message("12345", "bad number", "b"), Message(kenyan_number(2), "", "c")]
    with client_for(gw.url) as sms:
        ok, bad_number, empty = sms.send_bulk(batch)
    assert ok.ok and ok.message_id
    assert (bad_number.code, bad_number.clientsmsid, bad_number.message_id) == (1003, "b", None)
    assert (empty.code, empty.clientsmsid) == (1009, "c")
    assert gw.message_count() == 1


def test_send_sms_balance_and_delivery_report(gw):
    with client_for(gw.url) as sms:
        sent = sms.send_sms("+254 712 345 678", "Habari", clientsmsid=99)
        balance = sms.balance()
        report = sms.delivery_report(sent.message_id)
        with pytest.raises(NoDeliveryReport) as missing:
            sms.delivery_report("99999999")
        with pytest.raises(ValueError):
            sms.send_sms("0712345678,0733123456", "one number only")
    assert (sent.code, sent.mobile, sent.clientsmsid, sent.network_id) == (200, "254712345678", 99, 1)
    assert str(balance.credit) == "99999.00" and balance.partner_id == PARTNER
    assert (report.message_id, report.status, report.description) == (sent.message_id, 1, "Scheduled")
    assert missing.value.code == 1008


def test_request_level_codes_raise_typed_errors_without_retrying(gw, proxy_for):
    proxy = proxy_for()
    with Client(proxy.url, PARTNER, "wrong-key-0000000000", shortcode=SHORTCODE) as wrong_key:
        with pytest.raises(InvalidCredentials) as refused:
            wrong_key.send_bulk(messages(3))
        with pytest.raises(InvalidCredentials):
            wrong_key.balance()
    assert (refused.value.code, refused.value.description, refused.value.attempts) == (1006, "Invalid credentials", 1)
    assert len(proxy.sendbulk_requests()) == 1  # 1006 is never retried
    gw.operator.partner("other", shortcode="OTHER")
    with client_for(gw.url, shortcode="OTHER") as not_ours, pytest.raises(InvalidSenderId) as sender:
        not_ours.send_bulk(messages(2))
    assert sender.value.code == 1001
    assert gw.message_count() == 0


def test_legacy_respose_code_gateway(start_gateway):
    legacy = start_gateway(SMSGW_LEGACY_RESPOSE_CODE="true")
    with client_for(legacy.url) as sms:
        results = sms.send_bulk(messages(3))
        assert sms.balance().credit == 99997
    with Client(legacy.url, PARTNER, "wrong-key-0000000000", shortcode=SHORTCODE) as wrong_key, pytest.raises(InvalidCredentials):
        wrong_key.send_bulk(messages(1))
    assert [r.code for r in results] == [200, 200, 200]


def speak_like_another_provider(path: str, body: bytes) -> bytes:
    """Rewrites smsgw's answers the way other providers of the family write them: only
    the misspelt `respose-code`, codes and network ids as strings, message ids and numbers
    as JSON numbers, credit as a number."""

    def entry(item: dict) -> dict:
        out = {"respose-code": str(item["response-code"]), "respose-description": item["response-description"]}
        if "messageid" in item:
            out["messageid"] = int(item["messageid"])
        if "networkid" in item:
            out["networkid"] = str(item["networkid"])
        if "mobile" in item:
            out["mobile"] = int(item["mobile"]) if str(item["mobile"]).isdigit() else item["mobile"]
        if "clientsmsid" in item:
            out["clientsmsid"] = item["clientsmsid"]
        return out

    doc = orjson.loads(body)
    if "responses" in doc:
        return orjson.dumps({"responses": [entry(item) for item in doc["responses"]]})
    rewritten = entry(doc)
    if "credit" in doc:
        rewritten["credit"] = float(doc["credit"])
    return orjson.dumps(rewritten)


def test_answers_in_another_providers_shape(gw, proxy_for):
    proxy = proxy_for(rewrite=speak_like_another_provider)
    with client_for(proxy.url) as sms:
        ok, bad = sms.send_bulk([Message(kenyan_number(5), "hi", 1), Message("12345", "hi", 2)])
        balance = sms.balance()
        with pytest.raises(InvalidCredentials):
            Client(proxy.url, PARTNER, "wrong-key-0000000000", shortcode=SHORTCODE).balance()
    stored_id = gw.operator.sql("SELECT id FROM messages")[0][0]
    assert (ok.code, ok.message_id, ok.network_id, ok.mobile) == (200, str(stored_id), 1, "254710000005")
    assert (bad.code, bad.message_id) == (1003, None)
    assert str(balance.credit) == "99999.0"


def test_iter_send_bulk_reads_the_input_lazily(gw):
    consumed = 0

    def endless_enough():
        nonlocal consumed
        for item in messages(5000):
            consumed += 1
            yield item

    with client_for(gw.url, batch_size=100, concurrency=2) as sms:
        stream = sms.iter_send_bulk(endless_enough())
        first = next(stream)
        consumed_at_first_result = consumed
        rest = list(stream)
    assert first.ok and first.clientsmsid == 0
    # At most 2 × concurrency batches are read ahead, never the whole input.
    assert consumed_at_first_result <= 2 * 2 * 100
    assert len(rest) == 4999 and consumed == 5000
    assert len(gw.charges()) == 50


def test_a_request_that_keeps_failing_raises_with_the_results_already_obtained(gw, proxy_for):
    # Request 2 always gets 4090: retried (same key), then raised; request 1's results
    # come with the exception and request 3 is never sent.
    proxy = proxy_for(plan=lambda n, path: FORWARD if n == 1 else FAKE_4090)
    with client_for(proxy.url, batch_size=10, concurrency=1, retry=RetryPolicy(max_attempts=3, base_delay=0.01)) as sms:
        with pytest.raises(TryAgainLater) as exhausted:
            sms.send_bulk(messages(30))
    assert exhausted.value.attempts == 3
    assert [r.clientsmsid for r in exhausted.value.results] == list(range(10))
    requests = proxy.sendbulk_requests()
    assert len(requests) == 4 and len({seen.idempotency_key for seen in requests[1:]}) == 1
    assert requests[0].idempotency_key != requests[1].idempotency_key
    # The faked 4090s were forwarded: the gateway accepted request 2 once and replayed it.
    assert gw.message_count() == 20 and len(gw.charges()) == 2


def test_from_env(gw, monkeypatch):
    monkeypatch.setenv("SMSGW_URL", gw.url)
    monkeypatch.setenv("SMSGW_PARTNER_ID", PARTNER)
    monkeypatch.setenv("SMSGW_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("SMSGW_SHORTCODE", SHORTCODE)
    with Client.from_env(retry=NO_RETRIES) as sms:
        assert sms.send_sms(kenyan_number(3), "from the environment").ok
        assert DEFAULT_KEY not in repr(sms)
    monkeypatch.delenv("SMSGW_API_KEY")
    with pytest.raises(ValueError, match="SMSGW_API_KEY"):
        Client.from_env()


# -- asyncio ------------------------------------------------------------------------------------------


async def test_async_send_bulk_balance_and_report(gw):
    async with AsyncClient(gw.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE) as sms:
        results = await sms.send_bulk(messages(2500))
        balance = await sms.balance()
        report = await sms.delivery_report(results[-1].message_id)
        single = await sms.send_sms(kenyan_number(9), "async single", clientsmsid="s")
        with pytest.raises(NoDeliveryReport):
            await sms.delivery_report("1")
    assert [r.clientsmsid for r in results] == list(range(2500)) and all(r.ok for r in results)
    assert str(balance.credit) == "97500.00"
    assert report.message_id == results[-1].message_id and report.status == 1
    assert single.ok and single.clientsmsid == "s"
    assert sorted(c["message_count"] for c in gw.charges()) == [1, 500, 1000, 1000]


async def test_async_stream_from_an_async_source_and_typed_errors(gw):
    async def source():
        for item in messages(250):
            yield item

    async with AsyncClient(gw.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE, batch_size=100, concurrency=3) as sms:
        seen = [result.clientsmsid async for result in sms.iter_send_bulk(source())]
    assert seen == list(range(250))
    assert len(gw.charges()) == 3
    async with AsyncClient(gw.url, PARTNER, "wrong-key-0000000000", shortcode=SHORTCODE) as wrong:
        with pytest.raises(InvalidCredentials):
            await wrong.send_bulk(messages(1))
        with pytest.raises(InvalidCredentials):
            await wrong.balance()


async def test_async_retry_of_a_lost_answer_sends_nothing_twice(gw, proxy_for):
    proxy = proxy_for(plan=lambda n, path: FAKE_4090 if n == 1 else FORWARD)
    async with AsyncClient(proxy.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE, retry=RetryPolicy(base_delay=0.01)) as sms:
        results = await sms.send_bulk(messages(40))
    assert all(r.ok for r in results)
    assert len(proxy.sendbulk_requests()) == 2
    assert gw.message_count() == 40 and len(gw.charges()) == 1
