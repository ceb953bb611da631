"""Throughput of the partner SMPP server: submit_sm accepted durably, and receipts delivered
back to the binds.

Starts a real `smsgw serve --smpp-port` process on loopback with a fresh store (the built-in
simulated carrier delivers in the same process), binds `--binds` transceivers of one SMPP
account, each keeping `--window` submit_sm unanswered, for `--seconds`; prints submit_sm/s
answered ESME_ROK (each one committed before its answer), the receipts/s that came back as
deliver_sm while submitting and until every receipt is in, and the server's CPU and RSS.
The ESMEs use the gateway's own codec (pdu.py) over asyncio streams: cheap enough that the
server, not the client, is what is measured.

    python bench/smpp_server.py [--seconds 10] [--binds 4] [--window 64] [--synchronous FULL] [--database-url URL]

Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from smsgw.connectors.smpp.pdu import (  # noqa: E402
    BindTransceiver,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm,
    SubmitSmResp,
    encode_pdu,
    read_pdu,
)
from smsgw.store import smpp_accounts  # noqa: E402
from smsgw.store.smpp_accounts import SmppAccount  # noqa: E402
from smsgw.store.store import Store  # noqa: E402
from smsgw.store.urls import StoreUrl  # noqa: E402

PASSWORD = "bench"
PREFIXES = ["70", "71", "72", "79", "11", "73", "75", "78", "77"]


async def prepare_store(url: str, binds: int, window: int) -> None:
    store = Store.open(StoreUrl.parse(url))
    try:
        await store.migrate()
        hasher = await store.api_key_hasher(None)
        await store.create_partner("bench", "bench", hasher.hash("bench-key-0123456789abcdef"), 10**13)
        await store.add_shortcode("BENCH", "bench", None)
        await store.write(
            smpp_accounts.add_account, SmppAccount("bench", "bench", hasher.hash(PASSWORD), binds, window, None), int(time.time() * 1000)
        )
    finally:
        await store.close()


class Counters:
    def __init__(self) -> None:
        self.accepted = 0
        self.refused = 0
        self.receipts = 0
        self.first_receipt_at = 0.0
        self.last_receipt_at = 0.0


async def esme(port: int, index: int, window: int, until: float, counters: Counters) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_pdu(BindTransceiver(sequence_number=1, system_id="bench", password=PASSWORD)))
    bound = await read_pdu(reader)
    if bound.command_status != 0:
        raise SystemExit(f"bind refused: 0x{bound.command_status:X}")
    slots = asyncio.Semaphore(window)
    sequence = 1

    async def read() -> None:
        while True:
            pdu = await read_pdu(reader)
            if isinstance(pdu, SubmitSmResp):
                if pdu.command_status == 0:
                    counters.accepted += 1
                else:
                    counters.refused += 1
                slots.release()
            elif isinstance(pdu, DeliverSm):
                now = time.monotonic()
                counters.receipts += 1
                counters.first_receipt_at = counters.first_receipt_at or now
                counters.last_receipt_at = now
                writer.write(encode_pdu(DeliverSmResp(sequence_number=pdu.sequence_number)))
            elif isinstance(pdu, EnquireLink):
                writer.write(encode_pdu(EnquireLinkResp(sequence_number=pdu.sequence_number)))

    reading = asyncio.create_task(read())
    try:
        while time.monotonic() < until:
            await slots.acquire()
            sequence += 1
            number = f"254{PREFIXES[sequence % len(PREFIXES)]}{index}{sequence:06d}"[:12]
            text = f"Dear customer {index}-{sequence}, your statement is ready.".encode()
            writer.write(
                encode_pdu(
                    SubmitSm(sequence_number=sequence, source_addr="BENCH", destination_addr=number, short_message=text, registered_delivery=1)
                )
            )
            if writer.transport.get_write_buffer_size() > 64 * 1024:
                await writer.drain()
        for _ in range(window):
            await slots.acquire()  # every submit_sm answered
        # Receipts keep coming after the last submit: wait until they stop.
        last = -1
        while counters.receipts != last:
            last = counters.receipts
            await asyncio.sleep(3)
    finally:
        reading.cancel()
        writer.close()


async def load(port: int, binds: int, window: int, seconds: float) -> tuple[Counters, float]:
    counters = Counters()
    started = time.monotonic()
    await asyncio.gather(*(esme(port, i, window, started + seconds, counters) for i in range(binds)))
    return counters, started


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-smpp-") as directory:
        url = args.database_url or f"sqlite:///{Path(directory) / 'bench.db'}"
        asyncio.run(prepare_store(url, args.binds, args.window))
        port, smpp_port = free_port(), free_port()
        env = dict(os.environ, SMSGW_DATABASE_URL=url, SMSGW_SQLITE_SYNCHRONOUS=args.synchronous, PYTHONPATH=str((ROOT / "src").resolve()))
        command = [sys.executable, "-m", "smsgw", "serve", "--port", str(port), "--smpp-port", str(smpp_port), "--log-level", "warning"]
        server = subprocess.Popen(command, env=env, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start: {server.stdout.read() if server.stdout else ''}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            process = psutil.Process(server.pid)
            cpu_before = process.cpu_times()
            counters, started = asyncio.run(load(smpp_port, args.binds, args.window, args.seconds))
            cpu_after = process.cpu_times()
            cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
            receipt_span = max(counters.last_receipt_at - started, 1e-9)
            print(
                f"store: {url.split('://')[0]} synchronous={args.synchronous}   binds: {args.binds}   window: {args.window}   cores: {os.cpu_count()}"
            )
            print(
                f"submit_sm accepted: {counters.accepted} in {args.seconds:.0f} s = {counters.accepted / args.seconds:.0f}/s   refused: {counters.refused}"
            )
            print(f"receipts delivered: {counters.receipts} = {counters.receipts / receipt_span:.0f}/s (from the first submit to the last receipt)")
            print(
                f"server: cpu {cpu:.1f} s ({cpu * 1000 / max(counters.accepted, 1):.2f} ms per message), rss {process.memory_info().rss / 2**20:.0f} MiB"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
