"""A dispatcher process killed with SIGKILL mid-run: its leases run out, another dispatcher
sends everything, and only what was on the wire can go out twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from smsgw.domain.states import DeliveryState

from ..helpers import entry, wait_for
from .conftest import Rig, number

WINDOW = 16


async def start_dispatcher(rig: Rig) -> asyncio.subprocess.Process:
    env = dict(os.environ, SMSGW_DATABASE_URL=rig.settings.database_url.raw, SMSGW_LEASE_SECONDS="2")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgw", "serve", "--role", "dispatcher", "--log-level", "warning",
        "--smsc", rig.smsc_url(window=WINDOW, tps=400),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def test_sigkilled_dispatcher_loses_nothing(rig: Rig):
    total = 1500
    for start in range(0, total, 500):
        answers = await rig.send([entry(number(i), f"crash test {i}") for i in range(start, start + 500)])
        assert all(a["response-code"] == 200 for a in answers)
    first = await start_dispatcher(rig)
    try:
        await wait_for(lambda: rig.simulator.submits >= 400, timeout=60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        sent_before = rig.simulator.submits
        assert sent_before < total, "the first dispatcher finished before it could be killed"
        second = await start_dispatcher(rig)
        try:
            delivered = int(DeliveryState.DELIVERED)
            await wait_for(lambda: rig.operator.sql(f"SELECT count(*) FROM messages WHERE state = {delivered}") == [(total,)], timeout=90)
        finally:
            second.terminate()
            await second.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    texts = rig.simulator.texts
    assert set(texts) == {f"crash test {i}" for i in range(total)}
    duplicates = sum(count - 1 for count in texts.values())
    assert duplicates <= WINDOW, duplicates
