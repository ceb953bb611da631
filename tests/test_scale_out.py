"""Scale-out on PostgreSQL: two API processes and three dispatcher processes sharing one store
and three SMSC binds; then the same with a dispatcher killed with SIGKILL mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from smsgw.connectors.smpp.simulator import SmscSimulator

from .dispatch.conftest import number
from .helpers import Operator, entry, free_port, make_settings, wait_for

WINDOW = 16
BINDS = 3
DISPATCHERS = 3
MESSAGES = 6_000  # enough that round two is mid-run when a dispatcher is killed


def logs_tail(logs: Path, lines: int = 15) -> str:
    """The end of each process's stderr: what a failed wait shows."""
    return "\n".join(f"{f.name}: " + "\n  ".join(f.read_text(errors="replace").splitlines()[-lines:]) for f in sorted(logs.glob("serve-*.log")))


@pytest.fixture
def shared_store(postgres_url):
    operator = Operator(make_settings(postgres_url))
    operator.partner("p1", credits=10_000_000_00, shortcode="SC1")
    return postgres_url, operator


async def start(*args: str, url: str, logs: Path) -> asyncio.subprocess.Process:
    env = dict(os.environ, SMSGW_DATABASE_URL=url, SMSGW_LEASE_SECONDS="3", SMSGW_BIND_LEASE_SECONDS="3")
    with open(logs / f"serve-{len(list(logs.glob('serve-*.log')))}.log", "wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", "serve", "--log-level", "info", *args,
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip


async def healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def accept(ports: list[int], marker: str) -> None:
    async with httpx.AsyncClient(timeout=120) as client:

        async def batch(i: int) -> None:
            entries = [entry(number(i * 1000 + j), f"{marker} {i * 1000 + j}") for j in range(1000)]
            response = await client.post(f"http://127.0.0.1:{ports[i % len(ports)]}/api/services/sendbulk", json={"count": 1000, "smslist": entries})
            assert all(r["response-code"] == 200 for r in response.json()["responses"])

        await asyncio.gather(*(batch(i) for i in range(MESSAGES // 1000)))


def delivered(operator: Operator, marker: str) -> int:
    return operator.sql(f"SELECT count(*) FROM messages WHERE state = 3 AND text LIKE '{marker} %'")[0][0]


def explained(operator: Operator, marker: str, simulator: SmscSimulator, logs: Path):
    def explain() -> str:
        states = operator.sql(f"SELECT state, count(*) FROM messages WHERE text LIKE '{marker} %' GROUP BY state")
        leases = operator.sql("SELECT name, owner FROM bind_leases")
        seen = f"simulator: {simulator.submits} submits, {simulator.bound_sessions} bound sessions"
        return f"states {states}, bind leases {leases}, {seen}\n{logs_tail(logs)}"

    return explain


async def test_many_api_and_dispatcher_processes_share_one_store(shared_store, tmp_path):
    url, operator = shared_store
    simulator = SmscSimulator(system_id="smsgw", password="secret")
    sim_port = await simulator.start("127.0.0.1", 0)
    smsc = [f"--smsc=smpp://smsgw:secret@127.0.0.1:{sim_port}?name=bind{b}&window={WINDOW}" for b in range(BINDS)]
    api_ports = [free_port(), free_port()]
    processes: list[asyncio.subprocess.Process] = []
    try:
        for port in api_ports:
            processes.append(await start("--role", "api", "--port", str(port), url=url, logs=tmp_path))
        dispatchers = [await start("--role", "dispatcher", *smsc, url=url, logs=tmp_path) for _ in range(DISPATCHERS)]
        processes += dispatchers
        for port in api_ports:
            await wait_for(lambda port=port: healthy(port), timeout=60, explain=lambda: logs_tail(tmp_path))

        # Round one: every message exactly once, never more binds than configured.
        await accept(api_ports, "first")
        await wait_for(
            lambda: delivered(operator, "first") == MESSAGES, timeout=180, interval=0.5, explain=explained(operator, "first", simulator, tmp_path)
        )
        first = {text: n for text, n in simulator.texts.items() if text.startswith("first ")}
        assert len(first) == MESSAGES and set(first.values()) == {1}
        assert simulator.max_concurrent_binds <= BINDS
        owners = {owner for (owner,) in operator.sql("SELECT owner FROM bind_leases WHERE owner <> ''")}
        assert len(owners) == DISPATCHERS  # the binds are shared out, one each

        # Round two: one dispatcher dies mid-run.
        await accept(api_ports, "second")
        await wait_for(lambda: sum(1 for t in simulator.texts if t.startswith("second ")) >= MESSAGES // 4, timeout=120)
        victim = dispatchers[0]
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        await wait_for(
            lambda: delivered(operator, "second") == MESSAGES, timeout=180, interval=0.5, explain=explained(operator, "second", simulator, tmp_path)
        )
        second = {text: n for text, n in simulator.texts.items() if text.startswith("second ")}
        assert len(second) == MESSAGES
        duplicates = sum(n - 1 for n in second.values())
        assert duplicates <= WINDOW, duplicates  # the killed dispatcher held one bind
        assert simulator.max_concurrent_binds <= BINDS
        balance_left = operator.balance("p1")
        assert balance_left == 10_000_000_00 - 2 * MESSAGES * 100  # each charged once
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
        await simulator.stop()


async def test_credit_stays_exact_across_api_worker_processes(postgres_url, tmp_path):
    """Twenty concurrent requests through two API worker processes, credit for five."""
    operator = Operator(make_settings(postgres_url))
    operator.partner("tight", credits=5 * 300, shortcode="T")
    port = free_port()
    server = await start("--role", "api", "--workers", "2", "--port", str(port), url=postgres_url, logs=tmp_path)
    try:
        await wait_for(lambda: healthy(port), timeout=60, explain=lambda: logs_tail(tmp_path))
        body = {"smslist": [entry(number(i), partner="tight", shortcode="T") for i in range(3)]}
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            answers = await asyncio.gather(*(client.post(f"http://127.0.0.1:{port}/api/services/sendbulk", json=body) for _ in range(20)))
        codes = [tuple(r["response-code"] for r in a.json()["responses"]) for a in answers]
        assert codes.count((200, 200, 200)) == 5 and codes.count((1004, 1004, 1004)) == 15
        assert operator.balance("tight") == 0
        assert min(e["balance_after"] for e in operator.ledger("tight")) >= 0
        assert operator.sql("SELECT count(*) FROM messages WHERE partner_id = 'tight'") == [(15,)]
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
