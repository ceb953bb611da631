from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from smsgw.config import Settings
from smsgw.connectors.smpp.simulator import SmscSimulator
from smsgw.dispatch.dispatcher import Dispatcher, DispatchSettings
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery
from smsgw.store.store import Store

from ..helpers import DEFAULT_KEY, LiveServer, Operator, make_settings

SYSTEM_ID = "smsgw"
PASSWORD = "secret"


def number(i: int, prefix: str = "071") -> str:
    """The i-th of a run of valid Kenyan numbers (071… is Safaricom, 0733… Airtel) that end
    in 00, so never in one of the simulator's test-number suffixes (0001..0009 pick failures)."""
    width = 8 - len(prefix)
    if i >= 10**width:
        raise ValueError(f"only {10**width} numbers with prefix {prefix}")
    return f"{prefix}{i:0{width}d}00"


@dataclass
class Rig:
    """An API on loopback, a simulated SMSC, and a dispatcher bound to it, all real."""

    settings: Settings
    operator: Operator
    api_url: str
    simulator: SmscSimulator
    store: Store
    dispatcher: Dispatcher | None = None

    async def send(self, entries: list[dict], path: str = "/api/services/sendbulk", **fields) -> list[dict]:
        async with httpx.AsyncClient(timeout=60) as client:
            if path.endswith("sendbulk"):
                body = {"count": len(entries), "smslist": entries}
            else:
                body = fields
            response = await client.post(self.api_url + path, json=body)
        return response.json()["responses"]

    async def dlr(self, message_id: str) -> dict:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                self.api_url + "/api/services/getdlr", json={"partnerID": "p1", "apikey": DEFAULT_KEY, "messageID": message_id}
            )
        return response.json()

    async def states(self) -> dict[int, int]:
        return dict(await self.store.read(lambda conn: conn.exec_driver_sql("SELECT id, state FROM messages").all()))

    def smsc_url(self, port: int | None = None, **options: Any) -> str:
        """The --smsc URL of the rig's simulator, or of another one listening on `port`."""
        query = "&".join(f"{k}={v}" for k, v in {"name": "carrier", **options}.items())
        return f"smpp://{SYSTEM_ID}:{PASSWORD}@127.0.0.1:{port or self.simulator_port}?{query}"

    simulator_port: int = 0

    @contextlib.asynccontextmanager
    async def delivering(self, dispatch: DispatchSettings | None = None, **options: Any) -> AsyncIterator[Dispatcher]:
        plan = DeliveryPlan.from_urls([self.smsc_url(**options)], self.settings)
        async with run_delivery(self.store, self.settings, plan, dispatch) as dispatcher:
            self.dispatcher = dispatcher
            yield dispatcher


@pytest.fixture
async def rig_factory(database_url):
    """Builds a Rig; keyword arguments go to the simulator, `env` to the settings."""
    async with contextlib.AsyncExitStack() as stack:

        async def build(env: dict[str, str] | None = None, **simulator_options: Any) -> Rig:
            settings = make_settings(database_url, **(env or {}))
            operator = Operator(settings)
            operator.partner("p1", credits=1_000_000_00, shortcode="SC1")
            server = LiveServer(settings)
            server.__enter__()
            stack.callback(server.__exit__, None, None, None)
            simulator_options.setdefault("test_numbers", True)  # the failure tests pick behaviours by number
            simulator = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD, **simulator_options)
            port = await simulator.start("127.0.0.1", 0)
            stack.push_async_callback(simulator.stop)
            store = Store.open(settings.database_url)
            await store.prepare()
            stack.push_async_callback(store.close)
            rig = Rig(settings, operator, server.url, simulator, store)
            rig.simulator_port = port
            return rig

        yield build


@pytest.fixture
async def smsc_factory():
    """Starts more simulated SMSCs on loopback (the rig's credentials); stopped at the end."""
    started: list[SmscSimulator] = []

    async def build(**options: Any) -> tuple[SmscSimulator, int]:
        simulator = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD, **options)
        started.append(simulator)
        return simulator, await simulator.start("127.0.0.1", 0)

    yield build
    for simulator in started:
        await simulator.stop()


@pytest.fixture
async def rig(rig_factory):
    return await rig_factory()
