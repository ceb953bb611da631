"""Acceptance throughput of sendbulk and of single-message sendsms, against the raw floor
measured in the same run.

Starts a real `smsgw serve` process on loopback with a fresh store, posts 1000-message
sendbulk bodies at concurrency 1, 4 and 16, then one-number sendsms requests at concurrency
1, 4, 16 and 64, for a bounded time each, and prints accepted messages per second, p50/p99
latency, the server's RSS and CPU. Then measures the floor: the same bulk bodies parsed with
orjson and the same rows inserted straight into SQLite with the same durability settings, in
one transaction per body, with no HTTP and no checks. No gateway can beat the floor; the
ratio says what the gateway's work costs.

    python bench/accept.py [--seconds 10] [--concurrency 1,4,16] [--single-concurrency 1,4,16,64]
                           [--optouts 1000000] [--database-url URL] [--baseline OTHER/src --rounds N]

With --optouts N, the sendbulk levels run again after N numbers (none of the bodies') are put
on the bench partner's opt-out list, and the one lookup acceptance makes per request is timed
on its own. With --baseline, a server from another source tree is measured too, alternating,
and the medians of the ratios are printed.

Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

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
                {
                    "partnerID": "bench",
                    "apikey": KEY,
                    "pass_type": "plain",
                    "clientsmsid": b * 1000 + i,
                    "mobile": number,
                    "message": text,
                    "shortcode": "BENCH",
                }
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
        await store.create_partner("bench", "bench", (await store.api_key_hasher(None)).hash(KEY), 10**13)
        await store.add_shortcode("BENCH", "bench", None)
    finally:
        await store.close()


def wait_healthy(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # a shared machine can take that long to start Python
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def bulk_requests(bodies: list[bytes]) -> list[bytes]:
    return [
        b"POST /api/services/sendbulk HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
        for body in bodies
    ]


def single_requests(count: int, seed: int = 11) -> list[bytes]:
    """One-number sendsms form posts, as an OTP or alert sender makes them."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        number = "0" + rng.choice(PREFIXES) + f"{rng.randrange(10**7):07d}"
        body = urlencode({"partnerID": "bench", "apikey": KEY, "shortcode": "BENCH", "mobile": number, "message": f"Your code is {i:06d}"}).encode()
        requests.append(
            b"POST /api/services/sendsms HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
    return requests


async def load(base: str, requests: list[bytes], per_request: int, concurrency: int, seconds: float) -> tuple[int, list[float], int]:
    """`concurrency` keep-alive connections, each posting requests back to back; each
    request carries `per_request` messages.

    A minimal HTTP/1.1 client on asyncio streams: the load generator shares the machine's two
    cores with the server, so it must cost as little CPU as possible (a full HTTP client
    library and a full JSON decode of each answer cost about as much as the server's work).
    Accepted messages are counted in the answer's bytes.
    """
    host, port = base.removeprefix("http://").split(":")
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
                if ok != per_request:
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
            rows.append(
                (next_id, "bench", item["shortcode"], item["mobile"], 1, item["message"], 0, 1, 100, str(item["clientsmsid"]), 1, 1, now, now, 1, now)
            )
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
        columns = [
            "id",
            "partner_id",
            "shortcode",
            "msisdn",
            "network_id",
            "text",
            "data_coding",
            "parts",
            "cost",
            "clientsmsid",
            "priority",
            "state",
            "due_at",
            "created_at",
            "batch_id",
            "expires_at",
        ]
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


async def _migrate(url: str) -> None:
    store = Store.open(StoreUrl.parse(url))
    try:
        await store.migrate()
    finally:
        await store.close()


Results = dict[tuple[str, int, int], tuple[int, float]]  # (request, listed opt-outs, concurrency) -> (msg/s, cpu ms/request)


def measure_server(src: Path, url: str, args: argparse.Namespace, bodies: list[bytes], directory: Path) -> Results:
    """Runs `smsgw serve --role api` from the source tree `src` on a fresh store and prints one
    row per level: sendbulk and sendsms at each concurrency, then (with --optouts) sendbulk
    again with the opt-out list filled."""
    if not url.startswith("sqlite"):
        asyncio.run(wipe_postgres(url))
    asyncio.run(prepare_store(url))
    # The server runs in a temporary directory: PYTHONPATH names the tree to measure absolutely.
    env = dict(os.environ, SMSGW_DATABASE_URL=url, SMSGW_SQLITE_SYNCHRONOUS=args.synchronous, PYTHONPATH=str(src.resolve()))
    command = [sys.executable, "-m", "smsgw", "serve", "--host", "127.0.0.1", "--port", str(args.port), "--log-level", "warning", "--role", "api"]
    server = subprocess.Popen(command, env=env, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{args.port}"
    results: Results = {}
    try:
        wait_healthy(base, server)
        process = psutil.Process(server.pid)
        bulk = bulk_requests(bodies)
        singles = single_requests(5000)
        asyncio.run(load(base, bulk[:2], 1000, 2, 2.0))  # warm-up: caches, first id block
        asyncio.run(load(base, singles, 1, 4, 1.0))
        print(f"server from {src}   store: {url.split('://')[0]}   bulk body: 1000 messages, {len(bodies[0]) // 1024} KiB   cores: {os.cpu_count()}")
        print(
            f"{'request':>9} {'opt-outs':>9} {'concurrency':>11} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'rss MiB':>8} {'server cpu':>10} {'cpu ms/req':>10}"
        )
        levels = [("sendbulk", bulk, 1000, 0, int(c)) for c in args.concurrency.split(",") if c]
        levels += [("sendsms", singles, 1, 0, int(c)) for c in args.single_concurrency.split(",") if c]
        if args.optouts:
            levels += [("sendbulk", bulk, 1000, args.optouts, int(c)) for c in args.concurrency.split(",") if c]
        listed = 0
        lookups: dict[int, float] = {}
        for kind, requests, per_request, optouts, concurrency in levels:
            if optouts != listed:
                lookups[listed] = optout_lookup_ms(url, bodies)
                fill_optout_list(url, optouts, bodies)
                listed = optouts
            process.cpu_percent()
            rate, latencies, errors = asyncio.run(load(base, requests, per_request, concurrency, args.seconds))
            rss = process.memory_info().rss / 2**20
            cpu = process.cpu_percent()
            # Server CPU per request: on a shared machine steadier than the rate itself.
            cpu_ms = cpu / 100 * args.seconds / max(1, len(latencies)) * 1000
            results[kind, optouts, concurrency] = (rate, cpu_ms)
            note = f"  ({errors} requests not fully accepted)" if errors else ""
            p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
            print(
                f"{kind:>9} {optouts:>9} {concurrency:>11} {rate:>9} {p50:>8.1f} {p99:>8.1f} {len(latencies):>9} {rss:>8.0f} {cpu:>9.0f}% {cpu_ms:>10.2f}{note}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.optouts:
        lookups[listed] = optout_lookup_ms(url, bodies)
        print("opt-out lookup of a 1000-number request: " + ", ".join(f"{ms:.1f} ms with {count:,} listed" for count, ms in sorted(lookups.items())))
    return results


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each concurrency level")
    parser.add_argument("--concurrency", default="1,4,16", help="concurrency levels of 1000-message sendbulk")
    parser.add_argument("--single-concurrency", default="1,4,16,64", help="concurrency levels of one-number sendsms")
    parser.add_argument("--optouts", type=int, default=0, help="run the sendbulk levels again with this many numbers on the opt-out list")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary directory")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--synchronous", default="FULL", help="SQLite synchronous setting for both server and floor")
    parser.add_argument("--wipe", action="store_true", help="allow emptying the PostgreSQL database given with --database-url")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also measure a server run from another source tree (e.g. an older commit's src/), alternating with this tree",
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: rounds of baseline then this tree; medians of the ratios are printed")
    args = parser.parse_args()

    bodies = make_bodies(20)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if args.database_url and not args.database_url.startswith("sqlite") and not args.wipe:
            raise SystemExit("the bench empties the PostgreSQL database it is given: add --wipe to confirm")
        trees = ([args.baseline] if args.baseline else []) + [ROOT / "src"]
        rounds = args.rounds if args.baseline else 1
        runs: list[list[Results]] = []
        url = ""
        for round_index in range(rounds):
            runs.append([])
            for index, src in enumerate(trees):
                url = args.database_url or f"sqlite:///{directory / f'bench-{round_index}-{index}.db'}"
                runs[-1].append(measure_server(src, url, args, bodies, directory))
        results = runs[-1][-1]
        if args.baseline:
            for column, name in ((0, "msg/s"), (1, "cpu ms/req")):
                ratios = "   ".join(
                    f"{k[0]} c={k[2]}: {statistics.median(run[1][k][column] / max(run[0][k][column], 1e-9) for run in runs):.2f}" for k in results
                )
                print(f"this tree / baseline, {name}, median of {rounds} rounds: {ratios}")
        best = max((rate for (kind, listed, _), (rate, _) in results.items() if kind == "sendbulk" and not listed), default=0)
        best_single = max((rate for (kind, _, _), (rate, _) in results.items() if kind == "sendsms"), default=0)
        if best and best_single:
            print(f"best single-message rate / best 1000-message rate: {best_single / best:.3f}")
        if url.startswith("sqlite"):
            floor = raw_floor(bodies, directory, args.synchronous, args.seconds)
            print(f"raw floor (orjson + sqlite3 executemany, synchronous={args.synchronous}): {floor} msg/s")
        else:
            floor = raw_floor_postgres(bodies, url, args.seconds)
            print(f"raw floor (orjson + asyncpg COPY, one transaction per body): {floor} msg/s")
        print(f"best 1000-message rate / floor: {best / floor:.2f}")
        ours, theirs = number_check_costs(bodies)
        print(f"number check: {ours:.2f} us/number (smsgw normaliser) vs {theirs:.2f} us/number (phonenumbers.parse + number_type)")


if __name__ == "__main__":
    main()
