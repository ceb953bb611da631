"""A partner's rate limit holds across API processes: two `smsgw serve --role api` processes
on one PostgreSQL store share one budget of 200 messages per second."""

from __future__ import annotations

import asyncio
import time

import httpx

from smsgw.store import accounts

from .dispatch.conftest import number
from .helpers import Operator, entry, free_port, make_settings, wait_for
from .test_scale_out import healthy, logs_tail, start

MPS = 200
SECONDS = 10.0
PER_REQUEST = 100
OFFERED_PER_SECOND = 2000  # ten times the limit


async def test_two_api_processes_share_one_rate_limit(postgres_url, tmp_path):
    operator = Operator(make_settings(postgres_url))
    operator.partner("p1", credits=1_000_000_00, shortcode="SC1")
    operator.partner("warm", credits=1_000_000_00, shortcode="WARM")  # no limit: warms the servers up
    operator._with_store(lambda store: store.write(accounts.set_rate_limit, "p1", MPS))
    ports = [free_port(), free_port()]
    servers = [await start("--role", "api", "--port", str(port), url=postgres_url, logs=tmp_path) for port in ports]
    try:
        for port in ports:
            await wait_for(lambda port=port: healthy(port), timeout=60, explain=lambda: logs_tail(tmp_path))
        async with httpx.AsyncClient(timeout=30) as client:
            # Pools, id blocks and statement caches filled first, so a cold start does not
            # eat into the burst.
            warm_up = {"smslist": [entry(number(i), "warm", partner="warm", shortcode="WARM") for i in range(PER_REQUEST)]}
            for _ in range(3):
                for port in ports:
                    assert (await client.post(f"http://127.0.0.1:{port}/api/services/sendbulk", json=warm_up)).status_code == 200
        body = {"smslist": [entry(number(i), f"burst {i}") for i in range(PER_REQUEST)]}
        accepted = refused = 0
        retry_after: set[str] = set()
        interval = PER_REQUEST / OFFERED_PER_SECOND
        async with httpx.AsyncClient(timeout=30) as client:
            started = time.monotonic()

            async def one(n: int) -> None:
                nonlocal accepted, refused
                # Paced: request n leaves at its slot, so the offer stays near 2,000/s.
                await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
                response = await client.post(f"http://127.0.0.1:{ports[n % 2]}/api/services/sendbulk", json=body)
                if response.status_code == 429:
                    assert response.json()["response-code"] == 1010
                    retry_after.add(response.headers["retry-after"])
                    refused += 1
                else:
                    assert [r["response-code"] for r in response.json()["responses"]] == [200] * PER_REQUEST
                    accepted += PER_REQUEST

            await asyncio.gather(*(one(n) for n in range(int(SECONDS / interval))))
            elapsed = time.monotonic() - started
        offered = accepted + refused * PER_REQUEST
        print(f"offered {offered} in {elapsed:.1f} s, accepted {accepted}, refused {refused} requests")
        # At least the limit for the burst's nominal length, less 10 %; at most the limit for
        # as long as it really lasted (longer on a busy machine), plus the one second's worth a
        # full bucket starts with and the request that may overdraw it. A bucket per process
        # would accept up to twice as much.
        assert 0.9 * MPS * SECONDS <= accepted <= MPS * max(SECONDS, elapsed) + MPS + PER_REQUEST, (accepted, elapsed)
        assert refused > 0 and retry_after and all(value.isdigit() and int(value) >= 1 for value in retry_after)
        assert operator.balance("p1") == 1_000_000_00 - accepted * 100
        assert operator.sql("SELECT count(*) FROM messages WHERE partner_id = 'p1'") == [(accepted,)]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            await asyncio.wait_for(server.wait(), 30)
