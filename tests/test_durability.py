"""A messageid, once answered, survives SIGKILL of the gateway, and is charged exactly once."""

from __future__ import annotations

import asyncio
import signal

import httpx

from .faults import write_lock_held
from .helpers import DEFAULT_KEY, Operator, bulk, entry, free_port, make_settings, start_serve


def _assert_charged_once(operator: Operator, credit: int) -> None:
    """Every stored message belongs to exactly one charge, and the balance is the initial
    credit minus exactly the charges (plus what the embedded carrier's refusals refunded)."""
    charges = operator.sql("SELECT batch_id, amount, message_count FROM ledger WHERE kind = 'charge'")
    per_batch = {batch: (n, cost) for batch, n, cost in operator.sql("SELECT batch_id, count(*), sum(cost) FROM messages GROUP BY batch_id")}
    assert {batch for batch, _, _ in charges} == set(per_batch)
    assert len(charges) == len(per_batch)
    for batch_id, amount, count in charges:
        assert per_batch[batch_id] == (count, -amount)
    (refunded,) = operator.sql("SELECT coalesce(sum(amount), 0) FROM ledger WHERE kind = 'refund'")[0]
    assert operator.balance("p1") == credit + sum(amount for _, amount, _ in charges) + refunded


def test_every_answered_message_survives_sigkill(tmp_path, database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", credits=1_000_000_00, shortcode="SC1")
    env = {"SMSGW_DATABASE_URL": str(settings.database_url.raw)}
    port = free_port()
    server = start_serve(env, port, tmp_path)
    url = f"http://127.0.0.1:{port}/api/services/sendbulk"
    body = bulk(*[entry(f"0712{i:06d}", f"durable message {i}", clientsmsid=i) for i in range(1000)])
    answered: list[dict] = []

    async def fire() -> None:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one() -> None:
                try:
                    response = await client.post(url, json=body)
                except httpx.HTTPError:
                    return  # in flight when the process died: never answered, so never promised
                answered.append(response.json())

            tasks = [asyncio.create_task(one()) for _ in range(12)]
            # Kill the gateway the moment the first answer is in, with others still in flight.
            while not answered:
                await asyncio.sleep(0.001)
            server.send_signal(signal.SIGKILL)
            await asyncio.gather(*tasks)

    try:
        asyncio.run(fire())
    finally:
        server.kill()
        server.wait(timeout=10)

    promised = [int(r["messageid"]) for answer in answered for r in answer["responses"] if r["response-code"] == 200]
    assert len(promised) >= 1000
    stored = {row[0] for row in operator.sql("SELECT id FROM messages")}
    assert set(promised) <= stored

    _assert_charged_once(operator, 1_000_000_00)

    # After a restart the gateway reports every promised message.
    server = start_serve(env, port, tmp_path)
    try:
        with httpx.Client(timeout=30) as client:
            for message_id in promised[:: max(1, len(promised) // 50)]:
                report = client.post(
                    f"http://127.0.0.1:{port}/api/services/getdlr",
                    json={"partnerID": "p1", "apikey": DEFAULT_KEY, "messageID": str(message_id)},
                ).json()
                assert report["response-code"] == 200 and report["message-id"] == str(message_id)
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_every_answered_single_message_survives_sigkill_amid_shared_commits(tmp_path, database_url):
    """Many concurrent one-number sendsms requests; a lock the gateway needs is held by another
    session for a moment, so that the requests queue and share one commit (group commit) when
    it is released; SIGKILL as soon as the first of that group is answered. Every
    answered messageid is stored and charged once."""
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", credits=1_000_000_00, shortcode="SC1")
    env = {"SMSGW_DATABASE_URL": str(settings.database_url.raw)}
    port = free_port()
    server = start_serve(env, port, tmp_path)
    url = f"http://127.0.0.1:{port}/api/services/sendsms"
    promised: list[int] = []
    lost_in_flight = 0
    senders = 32

    async def fire() -> None:
        limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            # The key verified and message ids reserved first (an invalid number: nothing
            # stored), so that the senders queue at the accepting transaction only.
            warm_up = {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "message": "warm-up", "mobile": "123"}
            assert (await client.post(url, data=warm_up)).json()["responses"][0]["response-code"] == 1003

            async def sender(n: int) -> None:
                nonlocal lost_in_flight
                for i in range(1000):
                    fields = {
                        "partnerID": "p1",
                        "apikey": DEFAULT_KEY,
                        "shortcode": "SC1",
                        "message": f"otp {n}-{i}",
                        "mobile": f"0712{n:02d}{i:04d}",
                    }
                    try:
                        response = await client.post(url, data=fields)
                    except httpx.HTTPError:
                        lost_in_flight += 1
                        return  # in flight when the process died: never answered, so never promised
                    (result,) = response.json()["responses"]
                    assert result["response-code"] == 200, result
                    promised.append(int(result["messageid"]))

            tasks = [asyncio.create_task(sender(n)) for n in range(senders)]
            while len(promised) < 50:
                await asyncio.sleep(0.001)
            with write_lock_held(settings):
                await asyncio.sleep(1.0)
                before_release = len(promised)
            # The request that met the lock first is committed alone; the first answer of the
            # group queued behind it means that group is committed and being answered.
            while len(promised) <= before_release + 1:
                await asyncio.sleep(0.0005)
            server.send_signal(signal.SIGKILL)
            await asyncio.gather(*tasks)

    try:
        asyncio.run(fire())
    finally:
        server.kill()
        server.wait(timeout=10)

    assert len(promised) > 50 and lost_in_flight > 0
    stored = {row[0] for row in operator.sql("SELECT id FROM messages")}
    assert set(promised) <= stored
    _assert_charged_once(operator, 1_000_000_00)
    # The charges of one group are written by one transaction with one clock reading: ten or
    # more charges at one millisecond were one commit.
    (largest,) = operator.sql("SELECT max(n) FROM (SELECT count(*) AS n FROM ledger WHERE kind = 'charge' GROUP BY created_at) AS per_commit")[0]
    assert largest >= 10, f"at most {largest} requests shared a commit"
