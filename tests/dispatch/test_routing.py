"""Several routes per network: priorities, weights, a route going out and coming back, and a
message one route refuses carried by another. Real SMSC simulators over TCP on loopback."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import time

import pytest
from click.testing import CliRunner

from smsgw.cli.main import main
from smsgw.connectors.smpp import pdu as smpp
from smsgw.dispatch.dispatcher import DispatchSettings
from smsgw.dispatch.routing import RouteError, RouteHealth, RouteState, parse_smsc_url
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery
from smsgw.domain.states import DeliveryState

from ..console.conftest import signed_in
from ..faults import LoopbackProxy, write_lock_held
from ..helpers import LiveServer, Operator, entry, make_settings, wait_for
from .conftest import Rig, number

DELIVERED = int(DeliveryState.DELIVERED)
REACHED_A_CARRIER = {DELIVERED, int(DeliveryState.SENT_TO_NETWORK)}
# Simulator test number (only with test_numbers=True): refused at submit_sm with ESME_RINVDSTADR.
REFUSED_NUMBER = "0712340002"
UPSTREAM_KEY = "upstream-key-for-the-downstream-gateway"
# The failover run's size: 1,500 in the suite; SMSGW_FAILOVER_MESSAGES=20000 for the long run.
FAILOVER_MESSAGES = int(os.environ.get("SMSGW_FAILOVER_MESSAGES", "1500"))


# -- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", (1, 1), id="defaults"),
        pytest.param("priority=2&weight=3", (2, 3), id="given"),
        pytest.param("priority=100&weight=1000", (100, 1000), id="largest"),
    ],
)
def test_priority_and_weight_are_read_from_the_url(query: str, expected: tuple[int, int]):
    config = parse_smsc_url(f"smpp://u:p@h:2775?{query}")
    assert (config.priority, config.weight) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("priority=0", "priority must be between 1 and 100", id="priority-zero"),
        pytest.param("weight=0", "weight must be between 1 and 1000", id="weight-zero"),
        pytest.param("weight=x", "weight must be a number", id="weight-not-a-number"),
        pytest.param("priority=1.5", "priority must be a number", id="priority-fraction"),
    ],
)
def test_bad_priority_or_weight_is_refused(query: str, message: str):
    with pytest.raises(RouteError, match=message):
        parse_smsc_url(f"smpp://u:p@h:2775?{query}")


# Steps: (time, "take" | "retry" | "answer", was it the probe); then the expected state.
HEALTH_CASES = [
    pytest.param([], 0.0, RouteState.UP, id="new-route-is-up"),
    pytest.param([(0, "retry", False)] * 2, 0.0, RouteState.UP, id="under-the-threshold"),
    pytest.param([(0, "retry", False)] * 3, 0.0, RouteState.DOWN, id="threshold-puts-it-down"),
    pytest.param([(0, "retry", False)] * 2 + [(0, "answer", False), (0, "retry", False)], 0.0, RouteState.UP, id="an-answer-resets-the-count"),
    pytest.param([(0, "retry", False)] * 3, 10.0, RouteState.PROBING, id="probe-time-comes"),
    pytest.param([(0, "retry", False)] * 3 + [(10, "answer", True)], 10.0, RouteState.UP, id="probe-answered-puts-it-up"),
    pytest.param([(0, "retry", False)] * 3 + [(10, "retry", True)], 29.0, RouteState.DOWN, id="failed-probe-waits-twice-as-long"),
    pytest.param([(0, "retry", False)] * 3 + [(10, "retry", True)], 30.0, RouteState.PROBING, id="then-probes-again"),
]


@pytest.mark.parametrize(("steps", "at", "expected"), HEALTH_CASES)
def test_route_health(steps: list[tuple[float, str, bool]], at: float, expected: RouteState):
    health = RouteHealth(failure_threshold=3, probe_seconds=10.0, max_probe_seconds=60.0)
    for now, what, probe in steps:
        health.answered(now, retry=what == "retry", probe=probe)
    assert health.state(at) is expected


def test_only_one_probe_at_a_time_and_the_trip_is_reported_once():
    health = RouteHealth(failure_threshold=2, probe_seconds=1.0)
    assert [health.answered(0, retry=True, probe=False) for _ in range(3)] == [False, True, False]
    assert not health.usable(0.5)
    assert health.usable(1.0) and health.taken(1.0)  # the probe
    assert not health.usable(1.0) and not health.taken(1.0)  # nothing else while it is out
    health.answered(1.2, retry=False, probe=True)
    assert health.usable(1.2) and health.state(1.2) is RouteState.UP


# -- over TCP ----------------------------------------------------------------------------------


async def accepted_by(simulator) -> collections.Counter[str]:
    return collections.Counter(r.destination for r in simulator.received if r.status == smpp.ESME_ROK)


async def send_all(rig: Rig, count: int, start: int = 0) -> list[dict]:
    answers: list[dict] = []
    for first in range(start, start + count, 1000):
        answers += await rig.send([entry(number(i)) for i in range(first, min(start + count, first + 1000))])
    assert all(a["response-code"] == 200 for a in answers)
    return answers


async def states_of(rig: Rig, answers: list[dict]) -> list[int]:
    states = await rig.states()
    return [states[int(a["messageid"])] for a in answers]


async def test_weights_three_to_one_split_the_traffic(rig: Rig, smsc_factory):
    second, port = await smsc_factory()
    plan = DeliveryPlan.from_urls([rig.smsc_url(name="a", weight=3), rig.smsc_url(port, name="b", weight=1)], rig.settings)
    async with run_delivery(rig.store, rig.settings, plan) as dispatcher:
        await wait_for(lambda: all(lane.usable(0) for lane in dispatcher.lanes))
        answers = await send_all(rig, 800)
        await wait_for(lambda: _all_in(rig, answers, {DELIVERED}))
    first = sum((await accepted_by(rig.simulator)).values())
    other = sum((await accepted_by(second)).values())
    assert first + other == 800
    assert 0.70 <= first / 800 <= 0.80, (first, other)


async def _all_in(rig: Rig, answers: list[dict], wanted: set[int]) -> bool:
    return set(await states_of(rig, answers)) <= wanted


async def test_the_next_priority_takes_over_when_a_route_dies_and_gives_back_when_it_returns(rig_factory, smsc_factory):
    rig = await rig_factory()
    backup, backup_port = await smsc_factory()
    window = 16
    plan = DeliveryPlan.from_urls(
        [rig.smsc_url(name="main", priority=1, window=window, tps=300), rig.smsc_url(backup_port, name="backup", priority=2, window=window)],
        rig.settings,
    )
    dispatch = DispatchSettings(retry_base_seconds=0.1, retry_max_seconds=1.0, route_probe_seconds=0.5)
    async with run_delivery(rig.store, rig.settings, plan, dispatch) as dispatcher:
        await wait_for(lambda: all(lane.usable(0) for lane in dispatcher.lanes))
        answers = await send_all(rig, FAILOVER_MESSAGES)
        await wait_for(lambda: len(rig.simulator.received) >= FAILOVER_MESSAGES // 5, timeout=60)
        await rig.simulator.stop()  # the carrier's end goes away mid-run
        stopped = time.monotonic()
        await wait_for(lambda: dispatcher.route_states() == {"main": "down", "backup": "up"})
        main_before = await accepted_by(rig.simulator)
        await wait_for(lambda: _all_in(rig, answers, REACHED_A_CARRIER), timeout=60 + FAILOVER_MESSAGES / 100)
        print(f"every message with a carrier {time.monotonic() - stopped:.1f} s after the main route died")
        assert sum((await accepted_by(backup)).values()) > 0
        # The main route returns: once its probe is answered, its priority takes the traffic back.
        await rig.simulator.start("127.0.0.1", rig.simulator_port)
        main = dispatcher.lanes[0]
        await wait_for(lambda: main.connector.bound, timeout=60)
        await wait_for(lambda: main.usable(time.monotonic()))
        probe = await send_all(rig, 1, start=FAILOVER_MESSAGES + 999)
        await wait_for(lambda: _all_in(rig, probe, REACHED_A_CARRIER))
        later = await send_all(rig, 200, start=FAILOVER_MESSAGES + 1000)
        await wait_for(lambda: _all_in(rig, later, REACHED_A_CARRIER), timeout=60)
        assert dispatcher.route_states() == {"main": "up", "backup": "up"}
    main_after = await accepted_by(rig.simulator) - main_before
    on_backup = await accepted_by(backup)
    every = [a["mobile"] for a in answers]
    # Nothing lost: each message was taken by one carrier or the other ...
    assert all(main_before[m] + on_backup[m] >= 1 for m in every)
    # ... and only what sat unanswered in the main route's window when it died went twice.
    twice = sum(1 for m in every if main_before[m] + on_backup[m] > 1)
    assert twice <= window, twice
    assert set(await states_of(rig, answers)) <= REACHED_A_CARRIER
    # Back on the main route once its probe was answered.
    assert main_after[probe[0]["mobile"]] == 1
    assert sum(main_after[a["mobile"]] for a in later) == 200


async def test_a_message_one_route_refuses_is_carried_by_another(rig: Rig, smsc_factory):
    # The rig's simulator knows the test numbers (it refuses REFUSED_NUMBER); the other does not.
    other, port = await smsc_factory()
    plan = DeliveryPlan.from_urls([rig.smsc_url(name="a", priority=1), rig.smsc_url(port, name="b", priority=2)], rig.settings)
    async with run_delivery(rig.store, rig.settings, plan) as dispatcher:
        await wait_for(lambda: all(lane.usable(0) for lane in dispatcher.lanes))
        answers = await rig.send([entry(REFUSED_NUMBER), entry(number(1))])
        await wait_for(lambda: _all_in(rig, answers, {DELIVERED}))
    refused, ordinary = answers[0]["mobile"], answers[1]["mobile"]
    assert [r.status for r in rig.simulator.received if r.destination == refused] == [smpp.ESME_RINVDSTADR]
    assert list(await accepted_by(other)) == [refused]  # the ordinary one stayed on priority 1
    assert (await accepted_by(rig.simulator))[ordinary] == 1
    rows = await rig.store.read(lambda conn: conn.exec_driver_sql("SELECT id, connector FROM messages ORDER BY id").all())
    assert [connector for _, connector in rows] == ["b", "a"]
    assert not [e for e in rig.operator.ledger("p1") if e["kind"] == "refund"]
    # The operator sees which route carried it, and what the other one answered.
    shown = await asyncio.to_thread(
        CliRunner().invoke, main, ["message", answers[0]["messageid"]], env={"SMSGW_DATABASE_URL": rig.settings.database_url.raw}
    )
    assert shown.exit_code == 0, shown.output
    assert "route:      b (carrier ids " in shown.stdout and "DeliveredToTerminal" in shown.stdout
    missing = await asyncio.to_thread(CliRunner().invoke, main, ["message", "999999999"], env={"SMSGW_DATABASE_URL": rig.settings.database_url.raw})
    assert missing.exit_code != 0 and "message 999999999 does not exist" in missing.output


async def test_refused_by_every_route_fails_once_and_is_refunded(rig: Rig, smsc_factory):
    other, port = await smsc_factory(test_numbers=True)
    plan = DeliveryPlan.from_urls([rig.smsc_url(name="a"), rig.smsc_url(port, name="b", priority=2)], rig.settings)
    async with run_delivery(rig.store, rig.settings, plan) as dispatcher:
        await wait_for(lambda: all(lane.usable(0) for lane in dispatcher.lanes))
        answers = await rig.send([entry(REFUSED_NUMBER)])
        await wait_for(lambda: _all_in(rig, answers, {int(DeliveryState.DELIVERY_IMPOSSIBLE)}))
    mobile = answers[0]["mobile"]
    assert [r.destination for r in rig.simulator.received] == [mobile]
    assert [r.destination for r in other.received] == [mobile]
    (error,) = await rig.store.read(lambda conn: conn.exec_driver_sql("SELECT error FROM messages").scalars().all())
    assert "rejected by b" in error and "also refused by a" in error
    refunds = [e for e in rig.operator.ledger("p1") if e["kind"] == "refund"]
    assert [e["amount"] for e in refunds] == [100]


class DroppingProxy(LoopbackProxy):
    """A TCP proxy on loopback that forwards to `target` but, for the first `drops`
    connections, closes the client's side as the answer starts to come back: the request
    reached the upstream, the client never learns its answer."""

    def __init__(self, target_port: int, drops: int) -> None:
        super().__init__(target_port)
        self.drops = drops
        self.dropped = 0
        self.chosen = 0  # connections chosen to be dropped

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        drop = self.chosen < self.drops
        self.chosen += drop

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, answers: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    if answers and drop:
                        self.dropped += 1
                        writer.transport.abort()
                        return
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True), return_exceptions=True)


async def test_an_upstream_gateway_carries_messages_once_and_its_reports_come_back(rig: Rig, smsc_factory, tmp_path):
    # The upstream provider: a second smsgw with its own store, delivering to its own carrier.
    upstream_settings = make_settings(f"sqlite:///{tmp_path / 'upstream.db'}")
    Operator(upstream_settings).partner("down", credits=1_000_000_00, key=UPSTREAM_KEY, shortcode="SC1")
    carrier, carrier_port = await smsc_factory()
    upstream_plan = DeliveryPlan.from_urls([rig.smsc_url(carrier_port, name="upstream-carrier")], upstream_settings)
    with LiveServer(upstream_settings, delivery=lambda store: run_delivery(store, upstream_settings, upstream_plan)) as upstream:
        proxy = DroppingProxy(int(upstream.url.rsplit(":", 1)[1]), drops=1)
        proxy_port = await proxy.start()
        try:
            route = f"sendbulk+http://down:{UPSTREAM_KEY}@127.0.0.1:{proxy_port}/?shortcode=SC1&name=up&poll_interval=0.5&poll_rate=200"
            plan = DeliveryPlan.from_urls([route], rig.settings)
            async with run_delivery(rig.store, rig.settings, plan):
                answers = await send_all(rig, 600)
                await wait_for(lambda: _all_in(rig, answers, {DELIVERED}), timeout=90)
        finally:
            await proxy.stop()
    assert proxy.dropped == 1
    taken = await accepted_by(carrier)
    # Every message reached the upstream's carrier once, though one batch's answer was lost.
    assert sorted(taken) == sorted(a["mobile"] for a in answers) and set(taken.values()) == {1}
    rows = await rig.store.read(lambda conn: conn.exec_driver_sql("SELECT DISTINCT connector FROM messages").scalars().all())
    assert rows == ["up"]
    assert Operator(upstream_settings).balance("down") == 1_000_000_00 - 600 * 100


async def test_an_upstream_that_answers_4090_gets_each_message_once(rig: Rig, smsc_factory, tmp_path):
    # A short lock wait: the upstream answers 4090 soon instead of after its default 10 s.
    upstream_settings = make_settings(f"sqlite:///{tmp_path / 'upstream.db'}", SMSGW_LOCK_TIMEOUT_MS="300")
    Operator(upstream_settings).partner("down", credits=1_000_000_00, key=UPSTREAM_KEY, shortcode="SC1")
    carrier, carrier_port = await smsc_factory()
    upstream_plan = DeliveryPlan.from_urls([rig.smsc_url(carrier_port, name="upstream-carrier")], upstream_settings)
    with LiveServer(upstream_settings, delivery=lambda store: run_delivery(store, upstream_settings, upstream_plan)) as upstream:
        route = f"sendbulk+http://down:{UPSTREAM_KEY}@{upstream.url.split('//', 1)[1]}/?shortcode=SC1&name=up&poll_interval=0.5&poll_rate=200"
        plan = DeliveryPlan.from_urls([route], rig.settings)
        async with run_delivery(rig.store, rig.settings, plan) as dispatcher:
            connector = dispatcher.lanes[0].connector
            # The upstream's store is locked: it answers 4090 (nothing accepted) until it is free.
            with write_lock_held(upstream_settings):
                answers = await send_all(rig, 300)
                await wait_for(lambda: connector.stats["answered 4090"] >= 1, timeout=60)
            await wait_for(lambda: _all_in(rig, answers, {DELIVERED}), timeout=90)
    taken = await accepted_by(carrier)
    assert sorted(taken) == sorted(a["mobile"] for a in answers) and set(taken.values()) == {1}
    assert Operator(upstream_settings).balance("down") == 1_000_000_00 - 300 * 100


def routes_page(rig: Rig) -> dict[str, dict[str, str]]:
    """The console's routes page as an operator sees it: route name -> its row's data."""
    with signed_in(rig.api_url, "console", "ops", "ops password for the routes page") as client:
        answer = client.get("/console/routes")
    assert answer.status_code == 200, answer.text
    rows = re.findall(r'<tr class="route-[a-z]+" ((?:data-[a-z]+="[^"]*" ?)+)>', answer.text)
    return {fields["route"]: fields for fields in (dict(re.findall(r'data-([a-z]+)="([^"]*)"', row)) for row in rows)}


async def test_the_console_shows_each_routes_state_holder_and_traffic_as_its_dispatcher_reports_them(rig_factory, smsc_factory):
    rig = await rig_factory(env={"SMSGW_BIND_LEASE_SECONDS": "3"})  # a report a second
    rig.operator.console_operator("ops", "ops password for the routes page")
    second, port = await smsc_factory()
    plan = DeliveryPlan.from_urls([rig.smsc_url(name="a", weight=3), rig.smsc_url(port, name="b", weight=1)], rig.settings)
    async with run_delivery(rig.store, rig.settings, plan) as dispatcher:
        await wait_for(lambda: all(lane.usable(0) for lane in dispatcher.lanes))
        answers = await send_all(rig, 400)
        await wait_for(lambda: _all_in(rig, answers, {DELIVERED}))
        taken = {"a": sum((await accepted_by(rig.simulator)).values()), "b": sum((await accepted_by(second)).values())}

        async def reported() -> dict[str, dict[str, str]] | None:
            page = await asyncio.to_thread(routes_page, rig)
            return page if {name: int(page.get(name, {}).get("taken", -1)) for name in taken} == taken else None

        page = await wait_for(reported, timeout=20, explain=lambda: routes_page(rig))
        assert {name: (row["state"], row["holder"]) for name, row in page.items()} == {"a": ("up", dispatcher.owner), "b": ("up", dispatcher.owner)}
        assert taken["a"] + taken["b"] == 400 and taken["a"] > taken["b"]
        # Route b's carrier goes away: the next report says so.
        await second.stop()
        page = await wait_for(lambda: _state_of(rig, "b", "down"), timeout=20, explain=lambda: routes_page(rig))
        assert page["a"]["state"] == "up"
    # A dispatcher that stops cleanly leaves its routes down and held by no one.
    page = await asyncio.to_thread(routes_page, rig)
    assert {name: (row["state"], row["holder"]) for name, row in page.items()} == {"a": ("down", ""), "b": ("down", "")}


async def _state_of(rig: Rig, route: str, state: str) -> dict[str, dict[str, str]] | None:
    page = await asyncio.to_thread(routes_page, rig)
    return page if page.get(route, {}).get("state") == state else None
