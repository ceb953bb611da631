"""Acceptance throughput of sendbulk, against the raw floor measured in the same run.

Starts a real `smsgw serve` process on loopback with a fresh store, posts 1000-message
sendbulk bodies at concurrency 1, 4 and 16 for a bounded time each, and prints accepted
messages per second, p50/p99 latency and the server's RSS. Then it puts a million numbers
(none of the bodies') on the partner's opt-out list and runs the levels again: the list's
lookup per request is what that costs. Then measures the floor: the
same bodies parsed with orjson and the same rows inserted straight into SQLite with the same
durability settings, in one transaction per body, with no HTTP and no checks. No gateway
can beat the floor; the ratio says what the gateway's work costs.

    python bench/accept.py [--seconds 10] [--concurrency 1,4,16] [--optouts 1000000] [--database-url URL]

Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from smsgw.domain.apikeys import hash_api_key  # noqa: E402
from smsgw.store.store import Store  # noqa: E402
from smsgw.store.urls import StoreUrl  # noqa: E402

KEY = "bench-key-0123456789abcdef"
PREFIXES = ["70", "71", "72", "79", "11", "73", "75", "78", "77"]  # Safaricom, Airtel, Telkom


def make_bodies(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    bodies = []
    for b in range(count):
        smslist = []
        for i in range(1000):
            number = "0" + rng.choice(PREFIXES) + f"{rng.randrange(10**7):07d}"
            text = f"Dear customer {b}-{i}, your statement for November is ready. Reply STOP to opt out."
            smslist.append(
                {"partnerID": "bench", "apikey": KEY, "pass_type": "plain", "clientsmsid": b * 1000 + i, "mobile": number, "message": text, "shortcode": "BENCH"}
            )
        bodies.append(orjson.dumps({"count": 1000, "smslist": smslist}))
    return bodies


async def wipe_postgres(url: str) -> None:
    """Empties the given PostgreSQL database (the bench needs a fresh store; --wipe asked)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


async def prepare_store(url: str) -> None:
    store = Store.open(StoreUrl.parse(url))
    try:
        await store.migrate()
        await store.create_partner("bench", "bench", hash_api_key(KEY), 10**13)
        await store.add_shortcode("BENCH", "bench", None)
    finally:
        await store.close()


def wait_healthy(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


async def load(base: str, bodies: list[bytes], concurrency: int, seconds: float) -> tuple[int, list[float], int]:
    """`concurrency` keep-alive connections, each posting bodies back to back.

    A minimal HTTP/1.1 client on asyncio streams: the load generator shares the machine's two
    cores with the server, so it must cost as little CPU as possible (a full HTTP client
    library and a full JSON decode of each answer cost about as much as the server's work).
    Accepted messages are counted in the answer's bytes.
    """
    host, port = base.removeprefix("http://").split(":")
    requests = [
        b"POST /api/services/sendbulk HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
        for body in bodies
    ]
    latencies: list[float] = []
    accepted = 0
    errors = 0
    stop_at = time.perf_counter() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal accepted, counter, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop_at:
                request = requests[counter % len(requests)]
                counter += 1
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                ok = answer.count(b'"response-code":200')
                accepted += ok
                if ok != 1000:
                    errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    elapsed = time.perf_counter() - began
    return int(accepted / elapsed), latencies, errors


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def number_check_costs(bodies: list[bytes]) -> tuple[float, float]:
    """Microseconds per number: smsgw's normaliser vs phonenumbers.parse + number_type."""
    import phonenumbers

    from smsgw.domain.networks import KENYA, NetworkTable

    numbers = [item["mobile"] for item in orjson.loads(bodies[0])["smslist"]] * 20
    table = NetworkTable.from_mapping(KENYA)
    began = time.perf_counter()
    for number in numbers:
        table.normalise(number)
    ours = (time.perf_counter() - began) / len(numbers) * 1e6
    began = time.perf_counter()
    for number in numbers:
        phonenumbers.number_type(phonenumbers.parse(number, "KE"))
    theirs = (time.perf_counter() - began) / len(numbers) * 1e6
    return ours, theirs


def floor_batches(bodies: list[bytes], seconds: float):
    """For `seconds`: each body parsed and turned into message rows, and nothing more (the
    floor's share of the work; ids count up from 1)."""
    next_id = 1
    stop_at = time.perf_counter() + seconds
    index = 0
    while time.perf_counter() < stop_at:
        doc = orjson.loads(bodies[index % len(bodies)])
        index += 1
        now = int(time.time() * 1000)
        rows = []
        for item in doc["smslist"]:
            rows.append((next_id, "bench", item["shortcode"], item["mobile"], 1, item["message"], 0, 1, 100, str(item["clientsmsid"]), 1, 1, now, now, 1, now))
            next_id += 1
        yield rows


def raw_floor_postgres(bodies: list[bytes], url: str, seconds: float) -> int:
    """Parse each body and COPY its rows into PostgreSQL with asyncpg, one transaction per
    body, the server's durability settings unchanged: the PostgreSQL floor."""
    import asyncpg

    async def run() -> int:
        await wipe_postgres(url)
        await _migrate(url)
        conn = await asyncpg.connect(url.replace("postgresql://", "postgres://", 1))
        columns = ["id", "partner_id", "shortcode", "msisdn", "network_id", "text", "data_coding", "parts", "cost", "clientsmsid", "priority", "state", "due_at", "created_at", "batch_id", "expires_at"]
        done = 0
        began = time.perf_counter()
        try:
            for rows in floor_batches(bodies, seconds):
                async with conn.transaction():
                    await conn.copy_records_to_table("messages", records=rows, columns=columns)
                done += len(rows)
        finally:
            await conn.close()
        return int(done / (time.perf_counter() - began))

    return asyncio.run(run())


def raw_floor(bodies: list[bytes], directory: Path, synchronous: str, seconds: float) -> int:
    """Parse each body and insert its rows into SQLite directly: the limit no gateway passes."""
    path = directory / "floor.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    columns = "id, partner_id, shortcode, msisdn, network_id, text, data_coding, parts, cost, clientsmsid, priority, state, due_at, created_at, batch_id, expires_at"
    sql = f"INSERT INTO messages ({columns}) VALUES ({','.join('?' * 16)})"
    done = 0
    began = time.perf_counter()
    for rows in floor_batches(bodies, seconds):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        done += len(rows)
    elapsed = time.perf_counter() - began
    conn.close()
    return int(done / elapsed)


def fill_optout_list(url: str, count: int, bodies: list[bytes]) -> None:
    """`count` numbers on the bench partner's list for its shortcode, none of them a number
    of the bodies (so every message is still accepted and only the lookup is measured)."""
    taken = {"254" + item["mobile"][1:] for body in bodies for item in orjson.loads(body)["smslist"]}
    rng = random.Random(11)
    numbers: set[str] = set()
    while len(numbers) < count:
        number = "2547" + f"{rng.randrange(10**8):08d}"
        if number not in taken:
            numbers.add(number)
    now = int(time.time() * 1000)
    rows = [("bench", "BENCH", n, "operator", now) for n in sorted(numbers)]

    async def insert() -> None:
        from sqlalchemy import insert as sql_insert

        from smsgw.store.schema import optouts

        store = Store.open(StoreUrl.parse(url))
        try:
            for start in range(0, len(rows), 50_000):
                chunk = [dict(zip(("partner_id", "shortcode", "msisdn", "source", "created_at"), r)) for r in rows[start : start + 50_000]]
                await store.write(lambda conn, chunk=chunk: conn.execute(sql_insert(optouts), chunk))
        finally:
            await store.close()

    asyncio.run(insert())


def optout_lookup_ms(url: str, bodies: list[bytes], rounds: int = 50) -> float:
    """Milliseconds of the acceptance path's one opt-out lookup for a 1000-number batch."""
    from smsgw.store import optout

    numbers = ["254" + item["mobile"][1:] for item in orjson.loads(bodies[0])["smslist"]]

    async def run() -> float:
        store = Store.open(StoreUrl.parse(url))
        try:
            await store.read(optout.listed, "bench", "BENCH", numbers)
            began = time.perf_counter()
            for _ in range(rounds):
                await store.read(optout.listed, "bench", "BENCH", numbers)
            return (time.perf_counter() - began) / rounds * 1000
        finally:
            await store.close()

    return asyncio.run(run())


async def _migrate(url: str) -> None:
    store = Store.open(StoreUrl.parse(url))
    try:
        await store.migrate()
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each concurrency level")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary directory")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--synchronous", default="FULL", help="SQLite synchronous setting for both server and floor")
    parser.add_argument("--wipe", action="store_true", help="allow emptying the PostgreSQL database given with --database-url")
    parser.add_argument("--optouts", type=int, default=1_000_000, help="numbers on the opt-out list for the second run of the levels (0: skip it)")
    args = parser.parse_args()

    bodies = make_bodies(20)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url = args.database_url or f"sqlite:///{directory / 'bench.db'}"
        if not url.startswith("sqlite"):
            if not args.wipe:
                raise SystemExit("the bench empties the PostgreSQL database it is given: add --wipe to confirm")
            asyncio.run(wipe_postgres(url))
        asyncio.run(prepare_store(url))
        env = dict(os.environ, SMSGW_DATABASE_URL=url, SMSGW_SQLITE_SYNCHRONOUS=args.synchronous)
        command = [sys.executable, "-m", "smsgw", "serve", "--host", "127.0.0.1", "--port", str(args.port), "--log-level", "warning", "--role", "api"]
        server = subprocess.Popen(command, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{args.port}"
        try:
            wait_healthy(base, server)
            process = psutil.Process(server.pid)
            asyncio.run(load(base, bodies[:2], 2, 2.0))  # warm-up: caches, first id block
            process.cpu_percent()
            print(f"store: {url.split('://')[0]}   body: 1000 messages, {len(bodies[0]) // 1024} KiB   cores: {os.cpu_count()}")
            print(f"{'opt-outs':>9} {'concurrency':>11} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'rss MiB':>8} {'server cpu':>10}")
            results = {}
            lookups = {}
            for listed in [0, args.optouts] if args.optouts else [0]:
                if listed:
                    fill_optout_list(url, listed, bodies)
                    process.cpu_percent()
                lookups[listed] = optout_lookup_ms(url, bodies)
                for concurrency in [int(c) for c in args.concurrency.split(",")]:
                    rate, latencies, errors = asyncio.run(load(base, bodies, concurrency, args.seconds))
                    rss = process.memory_info().rss / 2**20
                    cpu = process.cpu_percent()
                    if not listed:
                        results[concurrency] = rate
                    note = f"  ({errors} requests not fully accepted)" if errors else ""
                    print(
                        f"{listed:>9} {concurrency:>11} {rate:>9} {percentile(latencies, 0.5) * 1000:>8.1f} {percentile(latencies, 0.99) * 1000:>8.1f} "
                        f"{len(latencies):>9} {rss:>8.0f} {cpu:>9.0f}%{note}"
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
        best = max(results.values())
        if url.startswith("sqlite"):
            floor = raw_floor(bodies, directory, args.synchronous, args.seconds)
            print(f"raw floor (orjson + sqlite3 executemany, synchronous={args.synchronous}): {floor} msg/s")
        else:
            floor = raw_floor_postgres(bodies, url, args.seconds)
            print(f"raw floor (orjson + asyncpg COPY, one transaction per body): {floor} msg/s")
        print(f"best gateway rate / floor: {best / floor:.2f}")
        print("opt-out lookup per 1000-number request: " + ", ".join(f"{ms:.2f} ms with {listed:,} listed" for listed, ms in lookups.items()))
        ours, theirs = number_check_costs(bodies)
        print(f"number check: {ours:.2f} us/number (smsgw normaliser) vs {theirs:.2f} us/number (phonenumbers.parse + number_type)")


if __name__ == "__main__":
    main()
