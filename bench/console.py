"""How long the console's and the portal's pages take on a big store.

Fills a fresh SQLite store at revision 0015 straight through sqlite3 (fast, no API: the pages'
cost is what is measured, not acceptance; the two indexes of that revision are built once after
the fill, not row by row) with --messages messages of --partners partners, one charge per 1000
messages in the ledger, and a small partner with 50 messages among them; then times the
migration to the newest revision (which indexes and counts what is stored), starts the real app
under uvicorn on loopback, signs in an operator and two partners through the sign-in forms, and
times every page --rounds times, printing the median and the slowest in ms.

    python bench/console.py [--messages 1000000] [--partners 20] [--rounds 20] [--keep DIR]

Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402

from smsgw.store import rollups  # noqa: E402
from smsgw.store.migrate import alembic_config  # noqa: E402
from smsgw.store.store import Store  # noqa: E402
from smsgw.store.urls import StoreUrl  # noqa: E402
from tests.helpers import LiveServer, Operator, make_settings  # noqa: E402

PASSWORD = "bench password 1234"
PREFIXES = ["70", "71", "72", "79", "11", "73", "75", "78", "77"]
FIRST_ID = 10_000_000
CHUNK = 50_000
HOUR_MS = 3600_000
SMSCS = ("smsc-a", "smsc-b")


def fill(path: Path, messages: int, partners: int) -> tuple[int, str]:
    """Writes the messages and ledger rows; returns one stored message id and one number."""
    rng = random.Random(11)
    now = int(time.time() * 1000)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    # Built again after the fill, sorted, rather than at a random page per row.
    conn.execute("DROP INDEX ix_messages_msisdn")
    conn.execute("DROP INDEX ix_messages_partner")
    names = [f"p{n:02d}" for n in range(partners)]
    columns = (
        "id, partner_id, shortcode, msisdn, network_id, text, data_coding, parts, cost, priority, state, due_at, created_at, batch_id, expires_at,"
        " done_at, attempts, submitted_at, connector"
    )
    insert = f"INSERT INTO messages ({columns}) VALUES ({', '.join('?' * 19)})"
    ledger_rows = []
    sample = (FIRST_ID, "")
    written = 0
    started = time.monotonic()
    while written < messages:
        rows = []
        for i in range(written, min(messages, written + CHUNK)):
            mid = FIRST_ID + i
            partner = names[(i // 1000) % partners]
            created = now - (messages - i) * 30 * 86400_000 // messages  # spread over 30 days
            number = "254" + rng.choice(PREFIXES) + f"{rng.randrange(10**7):07d}"
            state = 3 if rng.random() < 0.9 else rng.choice((1, 2, 4, 5))
            done = created + 5000 if state in (3, 4, 5) else None
            # A carrier took all but the scheduled and a fifth of the failed (refused at submit),
            # over two SMSCs: migration 0021 counts these into outcome_rollups.
            taken = state in (2, 3, 4) or (state == 5 and rng.random() < 0.8)
            smsc = SMSCS[i % len(SMSCS)] if taken else None
            rows.append(
                (
                    mid,
                    partner,
                    partner.upper(),
                    number,
                    1 + i % 3,
                    f"Dear customer {i}, your statement is ready.",
                    0,
                    1,
                    100,
                    1,
                    state,
                    created,
                    created,
                    mid - mid % 1000,
                    created + 48 * HOUR_MS,
                    done,
                    1,
                    created + 1000 if taken else None,
                    smsc,
                )
            )
            if i % 1000 == 0:
                ledger_rows.append((partner, -100_000, 0, "charge", "sendbulk", 1000, mid, created))
            if i >= messages // 2 and not sample[1] and partner == names[0]:  # one of p00's, half way
                sample = (mid, number)
        conn.executemany(insert, rows)
        conn.commit()  # chunk by chunk, so that the WAL is checkpointed as it goes
        written += len(rows)
    small = [
        (
            FIRST_ID + messages + i,
            "small",
            "SMALL",
            "254712345678",
            1,
            f"small {i}",
            0,
            1,
            100,
            1,
            3,
            now,
            now,
            FIRST_ID + messages,
            now + HOUR_MS,
            now,
            1,
            now,
            "smsc-a",
        )
        for i in range(50)
    ]
    conn.executemany(insert, small)
    ledger_rows.append(("small", -5_000, 0, "charge", "sendbulk", 50, FIRST_ID + messages, now))
    conn.executemany(
        "INSERT INTO ledger (partner_id, amount, balance_after, kind, reference, message_count, batch_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ledger_rows,
    )
    conn.execute("UPDATE id_blocks SET next_value = ? WHERE name = 'message'", (FIRST_ID + messages + 1000,))
    conn.commit()
    conn.execute("CREATE INDEX ix_messages_msisdn ON messages (msisdn, partner_id, id)")
    conn.execute("CREATE INDEX ix_messages_partner ON messages (partner_id, id)")
    conn.commit()
    conn.close()
    print(f"filled {messages + 50:,} messages and {len(ledger_rows):,} ledger entries in {time.monotonic() - started:.1f} s")
    return sample


def signed_in(url: str, area: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get(f"/{area}/login").text).group(1)
    field = "username" if area == "console" else "partner"
    assert client.post(f"/{area}/login", data={"csrf": token, field: name, "password": PASSWORD}).status_code == 303
    return client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--roll", type=int, default=200_000, help="after the pages, the roller indexes the newest N messages again, timed")
    parser.add_argument("--keep", default=None, help="Directory for the store (default: a temporary one, removed).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(args.keep or scratch)
        path = directory / "console-bench.db"
        settings = make_settings(f"sqlite:///{path}")

        async def migrate(revision: str) -> None:
            store = Store.open(StoreUrl.parse(f"sqlite:///{path}"))
            await store.write(lambda conn: command.upgrade(alembic_config(conn), revision))
            await store.close()

        asyncio.run(migrate("0015"))
        # The partners' rows come after the migration: the helpers open the store, which
        # migrates an embedded store by itself.
        message_id, number = fill(path, args.messages, args.partners)
        started = time.monotonic()
        asyncio.run(migrate("head"))
        print(f"migrated to the newest revision in {time.monotonic() - started:.1f} s")
        operator = Operator(settings)
        for n in range(args.partners):
            operator.partner(f"p{n:02d}", credits=10**9, shortcode=f"P{n:02d}")
        operator.partner("small", shortcode="SMALL")
        operator.console_operator("bench", PASSWORD)
        operator.portal_password("p00", PASSWORD)
        operator.portal_password("small", PASSWORD)
        pages = {
            "console": [
                "/console/dashboard",
                "/console/partners",
                "/console/partners/p00",
                "/console/messages",
                f"/console/messages?q={number}",
                f"/console/messages?q={message_id}",
                f"/console/messages/{message_id}",
                "/console/audit",
            ],
            "portal p00": ["/portal/messages", f"/portal/messages?q={number}", f"/portal/messages/{message_id}", "/portal/statement"],
            "portal small": ["/portal/messages", "/portal/messages?q=0712345678", "/portal/statement"],
        }
        with LiveServer(settings) as server:
            clients = {
                "console": signed_in(server.url, "console", "bench"),
                "portal p00": signed_in(server.url, "portal", "p00"),
                "portal small": signed_in(server.url, "portal", "small"),
            }
            print(f"{'who':14s} {'page':44s} {'median ms':>10s} {'max ms':>8s} {'status':>6s}")
            for who, paths in pages.items():
                client = clients[who]
                for page in paths:
                    times, status = [], 0
                    for _ in range(args.rounds):
                        started = time.perf_counter()
                        status = client.get(page).status_code
                        times.append((time.perf_counter() - started) * 1000)
                    shown = page if len(page) <= 44 else page[:41] + "..."
                    print(f"{who:14s} {shown:44s} {statistics.median(times):10.1f} {max(times):8.1f} {status:6d}")
            for client in clients.values():
                client.close()
        if args.roll:
            print(roll_again(path, FIRST_ID + args.messages - args.roll))


def roll_again(path: Path, start: int) -> str:
    """Takes the messages from `start` on out of the number index and times the roller putting
    them back, step by step as a dispatcher would (their rollups are counted twice: the store
    is thrown away)."""
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM message_numbers WHERE message_id >= ?", (start,))
        conn.execute("UPDATE roll_marks SET next_id = ?, pending_limit = NULL, pending_since = NULL", (start,))

    async def roll() -> tuple[int, int, float]:
        store = Store.open(StoreUrl.parse(f"sqlite:///{path}"))
        try:
            total, steps, began = 0, 0, time.perf_counter()
            while True:
                step = await store.write(rollups.roll_step, "bench", int(time.time() * 1000), 60_000, 0)
                total, steps = total + step.rolled, steps + 1
                if not step.more and step.rolled == 0:
                    return total, steps, time.perf_counter() - began
        finally:
            await store.close()

    total, steps, seconds = asyncio.run(roll())
    return f"roller: {total:,} messages indexed and counted again in {steps} steps, {seconds:.1f} s: {total / seconds:,.0f} msg/s"


if __name__ == "__main__":
    main()
