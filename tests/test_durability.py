"""A messageid, once answered, survives SIGKILL of the gateway, and is charged exactly once."""

from __future__ import annotations

import asyncio
import signal

import httpx

from .helpers import DEFAULT_KEY, Operator, bulk, entry, free_port, make_settings, start_serve


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

    # Charged once: every stored message belongs to exactly one charge, and the balance is the
    # initial credit minus exactly the charges.
    charges = operator.sql("SELECT batch_id, amount, message_count FROM ledger WHERE kind = 'charge'")
    per_batch = dict((batch, (n, cost)) for batch, n, cost in operator.sql("SELECT batch_id, count(*), sum(cost) FROM messages GROUP BY batch_id"))
    assert {batch for batch, _, _ in charges} == set(per_batch)
    assert len(charges) == len(per_batch)
    for batch_id, amount, count in charges:
        assert per_batch[batch_id] == (count, -amount)
    assert operator.balance("p1") == 1_000_000_00 + sum(amount for _, amount, _ in charges)

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
