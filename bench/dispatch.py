"""Delivery throughput: messages from the store to an SMSC and their receipts back.

Queues N messages in a fresh store (through the acceptance transaction, as the API does),
starts the SMSC simulator in another process (`smsgw smsc-sim`), then runs a dispatcher in
this process against it and prints:

- submit_sm per second, from the first claim to the last submit_sm_resp recorded;
- receipts per second, and the share of receipts matched to their message;
- end-to-end: time until every message is DeliveredToTerminal.

    python bench/dispatch.py [--messages 20000] [--window 64] [--tps 0] [--database-url URL]
    python bench/dispatch.py --mixed 10 [--concurrency 4]

`--mixed SECONDS` instead measures the embedded default under mixed load: one `smsgw serve`
(API, dispatcher and simulated carrier in one process, one SQLite writer) takes 1000-message
sendbulk requests for SECONDS while it delivers them, beside acceptance alone (`serve --role
api`, the same load) and delivery alone (the same server delivering its backlog right after),
all in one run: both rates, with and without the other side, and the share each keeps.

Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from smsgw.config import Settings  # noqa: E402
from smsgw.dispatch.dispatcher import DispatchSettings  # noqa: E402
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery  # noqa: E402
from smsgw.domain.states import DeliveryState  # noqa: E402
from smsgw.store.schema import messages, unmatched_receipts  # noqa: E402
from smsgw.store.store import Store  # noqa: E402

SYSTEM_ID = "bench"
PASSWORD = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def queue_messages(store: Store, count: int) -> None:
    await store.create_partner("bench", "bench", (await store.api_key_hasher(None)).hash("bench-key-0123456789"), 10**13)
    now = int(time.time() * 1000)
    for start in range(0, count, 1000):
        size = min(1000, count - start)
        ids = await store.next_message_ids(size)
        rows = [
            (
                mid,
                "bench",
                "BENCH",
                f"2547{(start + i) % 10**6:06d}00",
                1,
                f"Benchmark message {start + i}",
                0,
                1,
                100,
                None,
                1,
                1,
                now,
                now,
                ids[0],
                now + 86_400_000,
            )
            for i, mid in enumerate(ids)
        ]
        await store.accept("bench", 100 * size, rows, ids[0], f"bench {start}")


async def count_states(store: Store) -> dict[int, int]:
    return dict(await store.read(lambda conn: conn.execute(select(messages.c.state, func.count()).group_by(messages.c.state)).all()))


async def run(args: argparse.Namespace, directory: Path) -> None:
    url = args.database_url or f"sqlite:///{directory / 'dispatch.db'}"
    if not url.startswith("sqlite"):
        if not args.wipe:
            raise SystemExit("the bench empties the PostgreSQL database it is given: add --wipe to confirm")
        from accept import wipe_postgres

        await wipe_postgres(url)
    settings = Settings.from_env({"SMSGW_DATABASE_URL": url, "SMSGW_SQLITE_SYNCHRONOUS": os.environ.get("SMSGW_SQLITE_SYNCHRONOUS", "FULL")})
    store = Store.open(settings.database_url)
    await store.migrate()
    began = time.perf_counter()
    await queue_messages(store, args.messages)
    if not store.is_sqlite:
        # A live PostgreSQL has planner statistics (autovacuum); a table filled a moment ago
        # has none, and the claim would be planned for an empty queue.
        await store.write(lambda conn: conn.exec_driver_sql("ANALYZE messages"))
    print(f"queued {args.messages} messages in {time.perf_counter() - began:.1f} s (store: {url.split(':')[0]})")

    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "smsgw", "smsc-sim", "--port", str(port), "--system-id", SYSTEM_ID, "--password", PASSWORD, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        await asyncio.sleep(1.5)
        smsc = f"smpp://{SYSTEM_ID}:{PASSWORD}@127.0.0.1:{port}?window={args.window}&tps={args.tps}&name=bench"
        plan = DeliveryPlan.from_urls([smsc], settings)
        process = psutil.Process()
        process.cpu_percent()
        sim_process = psutil.Process(simulator.pid)
        sim_process.cpu_percent()
        started = time.perf_counter()
        async with run_delivery(store, settings, plan, DispatchSettings(batch_size=args.window * 4)) as dispatcher:
            sent_at = None
            while True:
                await asyncio.sleep(0.1)
                if sent_at is None and dispatcher.stats["submitted"] >= args.messages:
                    sent_at = time.perf_counter()
                if dispatcher.stats["receipts matched"] >= args.messages:
                    break
                if time.perf_counter() - started > args.timeout:
                    print("timed out")
                    break
            done_at = time.perf_counter()
            stats = dict(dispatcher.stats)
        cpu = process.cpu_percent()
        sim_cpu = sim_process.cpu_percent()
        states = await count_states(store)
        unmatched = await store.read(
            lambda conn: conn.execute(
                select(func.count()).select_from(unmatched_receipts).where(unmatched_receipts.c.matched_at.is_(None))
            ).scalar_one()
        )
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
        await store.close()
    submit_seconds = (sent_at or done_at) - started
    total_seconds = done_at - started
    delivered = states.get(int(DeliveryState.DELIVERED), 0)
    receipts = stats.get("receipts matched", 0) + stats.get("receipts unmatched", 0)
    print(f"window {args.window}, tps limit {args.tps or 'none'}, cores {os.cpu_count()}")
    print(f"submit_sm/s (claim to submit_sm_resp recorded): {stats.get('submitted', 0) / submit_seconds:,.0f}")
    print(f"receipts/s:                                     {receipts / total_seconds:,.0f}")
    print(
        f"receipts matched:                               {stats.get('receipts matched', 0)} of {receipts} ({100 * stats.get('receipts matched', 0) / max(1, receipts):.1f} %), unmatched left: {unmatched}"
    )
    print(f"DeliveredToTerminal:                            {delivered} of {args.messages} in {total_seconds:.1f} s")
    print(f"cpu: gateway process {cpu:.0f} %, simulator process {sim_cpu:.0f} %")


def mixed(args: argparse.Namespace, directory: Path) -> None:
    """Three phases of `args.mixed` seconds, each on a fresh store and server: acceptance alone
    (`serve --role api`), acceptance and delivery at once (the embedded `serve`), then that
    server delivering its backlog alone."""
    from accept import bulk_requests, load, make_bodies, percentile, prepare_store, wait_healthy

    requests = bulk_requests(make_bodies(10))
    env = dict(os.environ, SMSGW_SQLITE_SYNCHRONOUS=os.environ.get("SMSGW_SQLITE_SYNCHRONOUS", "FULL"))
    # The servers run in a temporary directory: a relative PYTHONPATH (`PYTHONPATH=src`) would
    # silently measure the installed package instead of the tree asked for.
    env["PYTHONPATH"] = os.pathsep.join(str(Path(entry).resolve()) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry)

    def start_server(url: str, *role: str) -> tuple[subprocess.Popen, str]:
        asyncio.run(prepare_store(url))
        port = free_port()
        command = [sys.executable, "-m", "smsgw", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *role]
        server = subprocess.Popen(
            command, env=dict(env, SMSGW_DATABASE_URL=url), cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        return server, base

    def stop(server: subprocess.Popen) -> None:
        server.terminate()
        server.wait(timeout=30)

    alone_url = f"sqlite:///{directory / 'accept-alone.db'}"
    server, base = start_server(alone_url, "--role", "api")
    try:
        alone_rate, alone_latencies, alone_errors = asyncio.run(load(base, requests, 1000, args.concurrency, args.mixed))
    finally:
        stop(server)

    url = f"sqlite:///{directory / 'mixed.db'}"
    server, base = start_server(url)
    try:
        process = psutil.Process(server.pid)
        process.cpu_percent()
        window_start = int(time.time() * 1000)
        rate, latencies, errors = asyncio.run(load(base, requests, 1000, args.concurrency, args.mixed))
        window_end = int(time.time() * 1000)
        cpu = process.cpu_percent()
        time.sleep(args.mixed)
        after_end = int(time.time() * 1000)
    finally:
        stop(server)

    async def submitted_between(start: int, end: int) -> int:
        store = Store.open(Settings.from_env({"SMSGW_DATABASE_URL": url}).database_url)
        try:
            window = (messages.c.submitted_at >= start) & (messages.c.submitted_at <= end)
            return await store.read(lambda conn: conn.execute(select(func.count()).select_from(messages).where(window)).scalar_one())
        finally:
            await store.close()

    sent = asyncio.run(submitted_between(window_start, window_end))
    sent_after = asyncio.run(submitted_between(window_end, after_end))
    seconds = (window_end - window_start) / 1000
    submit_mixed = sent / seconds
    submit_alone = sent_after / ((after_end - window_end) / 1000)

    def latency(values: list[float], failed: int) -> str:
        note = f", {failed} requests not fully accepted" if failed else ""
        return f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p99 {percentile(values, 0.99) * 1000:.0f} ms{note}"

    print(
        f"SQLite synchronous={env['SMSGW_SQLITE_SYNCHRONOUS']}, {args.mixed:g} s per phase, sendbulk (1000 messages) from {args.concurrency} connections"
    )
    print(f"{'phase':<48} {'accepted msg/s':>15} {'submit_sm/s':>12}")
    print(f"{'acceptance alone (serve --role api)':<48} {alone_rate:>15,} {'-':>12}   ({latency(alone_latencies, alone_errors)})")
    print(f"{'acceptance and delivery at once (serve)':<48} {rate:>15,} {submit_mixed:>12,.0f}   ({latency(latencies, errors)}; cpu {cpu:.0f} %)")
    print(f"{'delivery alone, right after (same serve)':<48} {'-':>15} {submit_alone:>12,.0f}")
    print(f"shares kept under mixed load: acceptance {rate / max(1, alone_rate):.2f}, delivery {submit_mixed / max(1.0, submit_alone):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--tps", type=float, default=0)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-uvloop", action="store_true", help="run on the default asyncio loop")
    parser.add_argument("--wipe", action="store_true", help="allow emptying the PostgreSQL database given with --database-url")
    parser.add_argument("--mixed", type=float, default=0, help="seconds of mixed load on one embedded `smsgw serve` instead")
    parser.add_argument("--concurrency", type=int, default=4, help="sendbulk connections of the mixed load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.mixed:
            mixed(args, Path(tmp))
            return
        runner = asyncio.run
        if not args.no_uvloop:
            import uvloop

            runner = uvloop.run
        runner(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
