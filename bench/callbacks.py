"""Throughput of the callback sender: queued delivery reports POSTed to receivers on loopback.

Fills the callback outbox of a fresh SQLite store with N reports spread over P partners,
starts a minimal keep-alive HTTP receiver on 127.0.0.1 that answers 200 after `--delay-ms`,
runs the sender until every report is recorded delivered, and prints reports per second.
With `--hanging 1`, one more partner's receiver never answers, to show what it costs the
others.

    python bench/callbacks.py [--callbacks 5000] [--partners 1] [--delay-ms 0] [--hanging 0]

Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import func, insert, select  # noqa: E402

from smsgw.dispatch.webhooks import CallbackSender  # noqa: E402
from smsgw.store.schema import callbacks  # noqa: E402
from smsgw.store.store import Store, now_ms  # noqa: E402
from smsgw.store.urls import StoreUrl  # noqa: E402

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


async def receiver(delay: float, hang: bool) -> tuple[asyncio.Server, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if hang:
                    await asyncio.sleep(3600)
                if delay:
                    await asyncio.sleep(delay)
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(StoreUrl.parse(f"sqlite:///{tmp}/bench.db"))
        await store.prepare()
        servers = []
        partners: list[tuple[str, str]] = []
        for index in range(args.partners + args.hanging):
            server, port = await receiver(args.delay_ms / 1000, hang=index >= args.partners)
            servers.append(server)
            partner_id = f"p{index}"
            partners.append((partner_id, f"http://127.0.0.1:{port}/dlr"))
            await store.create_partner(partner_id, partner_id, "x", 0)
            await store.set_callback(partner_id, f"http://127.0.0.1:{port}/dlr", "secret")
        now = now_ms()
        body = b'{"messageid":"1","clientsmsid":null,"mobile":"254712345678","description":"DeliveredToTerminal","status":3}'
        rows = []
        for number in range(args.callbacks):
            partner_id, url = partners[number % len(partners)]
            rows.append(
                {"partner_id": partner_id, "message_id": number, "url": url, "body": body, "attempts": 0, "next_attempt_at": now, "created_at": now}
            )
        await store.write(lambda conn: conn.execute(insert(callbacks), rows))
        served = {p for p, _ in partners[: args.partners]}

        def delivered(conn) -> int:
            return conn.execute(
                select(func.count()).select_from(callbacks).where(callbacks.c.delivered_at.is_not(None), callbacks.c.partner_id.in_(served))
            ).scalar_one()

        expected = sum(1 for number in range(args.callbacks) if partners[number % len(partners)][0] in served)
        sender = CallbackSender(store, poll_interval=0.05, timeout=3600)
        started = time.perf_counter()
        await sender.start()
        try:
            while (done := await store.read(delivered)) < expected:
                if time.perf_counter() - started > args.max_seconds:
                    print(f"stopped after {args.max_seconds} s with {done} of {expected} delivered")
                    break
                await asyncio.sleep(0.05)
        finally:
            elapsed = time.perf_counter() - started
            await sender.stop()
            for server in servers:
                server.close()
            await store.close()
        print(
            f"{done} callbacks to {args.partners} partner(s) (+{args.hanging} hanging) in {elapsed:.2f} s: {done / elapsed:,.0f}/s, receiver delay {args.delay_ms} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--partners", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--hanging", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
