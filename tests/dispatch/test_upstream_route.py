"""An upstream provider as a route, with a second real smsgw as the upstream: each message
stored there once across a dispatcher killed mid-request, its final status followed after a
restart, and delivery reports pushed by the upstream to /upstream/ROUTE/dlr."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

import httpx
import orjson
import pytest

from smsgw.api.upstream_receipts import MAX_REPORT_AGE_SECONDS, authentic
from smsgw.connectors.base import smsc_id_keys
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery
from smsgw.dispatch.webhooks import SIGNATURE_V2_HEADER, TIMESTAMP_HEADER, signature_v2
from smsgw.domain.states import DeliveryState
from smsgw.store import outcomes
from smsgw.store.store import now_ms

from ..faults import LoopbackProxy
from ..helpers import DEFAULT_KEY, LiveServer, Operator, make_settings, wait_for
from .conftest import Rig, number
from .test_routing import UPSTREAM_KEY, accepted_by, send_all

DELIVERED = int(DeliveryState.DELIVERED)
SENT = int(DeliveryState.SENT_TO_NETWORK)
SECRET = "route-secret-shared-with-the-upstream"


@contextlib.contextmanager
def upstream_gateway(tmp_path, carrier_port: int, rig: Rig):
    """A second smsgw with its own store, where our partner account `down` sends through its
    own simulated carrier."""
    # Its callbacks are retried soon: a report that overtakes our record of the submit is answered 503.
    settings = make_settings(f"sqlite:///{tmp_path / 'upstream.db'}", SMSGW_CALLBACK_RETRY_BASE_SECONDS="0.5")
    Operator(settings).partner("down", credits=1_000_000_00, key=UPSTREAM_KEY, shortcode="SC1")
    plan = DeliveryPlan.from_urls([rig.smsc_url(carrier_port, name="upstream-carrier")], settings)
    with LiveServer(settings, delivery=lambda store: run_delivery(store, settings, plan)) as server:
        yield settings, server.url.split("//", 1)[1]


def route_url(address: str, **options: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"shortcode": "SC1", "name": "up", **options}.items())
    return f"sendbulk+http://down:{UPSTREAM_KEY}@{address}/?{query}"


def states_now(rig: Rig) -> list[tuple]:
    """Messages by state, read from a thread of its own (for a failing wait's message)."""
    return rig.operator.sql("SELECT state, count(*) FROM messages GROUP BY state")


async def counts_by_state(rig: Rig) -> dict[int, int]:
    return dict(await rig.store.read(lambda conn: conn.exec_driver_sql("SELECT state, count(*) FROM messages GROUP BY state").all()))


class HoldingProxy(LoopbackProxy):
    """A TCP proxy on loopback to `target_port`. While `holding`, the upstream's answers are
    kept from the client: a request reaches the upstream, which stores it, and its answer
    never comes back. `held_sendbulk` counts the sendbulk answers kept back so."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.holding = False
        self.held_sendbulk = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, answers: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    if answers and self.holding:
                        self.held_sendbulk += b'"responses"' in data
                        continue
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True), return_exceptions=True)


async def start_dispatcher(rig: Rig, route: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, SMSGW_DATABASE_URL=rig.settings.database_url.raw, SMSGW_LEASE_SECONDS="2", SMSGW_BIND_LEASE_SECONDS="1")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgw", "serve", "--role", "dispatcher", "--log-level", "warning", "--smsc", route,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def test_a_dispatcher_killed_while_the_upstream_stored_a_request_sends_each_message_once(rig: Rig, smsc_factory, tmp_path):
    total = 400
    carrier, carrier_port = await smsc_factory()
    with upstream_gateway(tmp_path, carrier_port, rig) as (upstream_settings, address):
        proxy = HoldingProxy(int(address.rsplit(":", 1)[1]))
        proxy_port = await proxy.start()
        # Batches of 50: several requests are under way when the dispatcher dies.
        route = route_url(f"127.0.0.1:{proxy_port}", window=50, poll_interval=0.5, poll_rate=500)
        answers = await send_all(rig, total)
        first = await start_dispatcher(rig, route)
        try:
            await wait_for(lambda: len(carrier.received) >= 60, timeout=60, explain="the upstream's carrier to receive 60 messages")
            proxy.holding = True
            await wait_for(lambda: proxy.held_sendbulk >= 1, timeout=30, explain="a sendbulk the upstream answered, its answer held back")
            first.send_signal(signal.SIGKILL)
            await first.wait()
            # What the upstream stored and we did not learn: sending it again must not store it twice.
            unknown = (await counts_by_state(rig)).get(int(DeliveryState.SCHEDULED), 0)
            assert unknown > 0, "every message was recorded before the kill"
            proxy.holding = False
            # Codes sent meanwhile go first (OTP before bulk): the batches made after the restart
            # are not those of before, and the lost answer's messages go with others.
            codes = [number(i) for i in range(total, total + 20)]
            answers += await rig.send(
                [], path="/api/services/sendotp", partnerID="p1", apikey=DEFAULT_KEY, shortcode="SC1", message="code", mobile=",".join(codes)
            )
            assert all(a["response-code"] == 200 for a in answers)
            second = await start_dispatcher(rig, route)
            try:
                mobiles = {str(a["mobile"]) for a in answers}  # a number in sendotp's answer
                await wait_for(
                    lambda: {r.destination for r in carrier.received} >= mobiles, timeout=90, explain=lambda: (states_now(rig), len(carrier.received))
                )
                await wait_for(lambda: _none_scheduled(rig), timeout=30, explain=lambda: states_now(rig))
                taken = await accepted_by(carrier)
                assert sorted(taken) == sorted(mobiles)
                assert [mobile for mobile, count in taken.items() if count > 1] == []
                assert Operator(upstream_settings).balance("down") == 1_000_000_00 - len(mobiles) * 100
                # Their final statuses after a restart: test_messages_the_upstream_took_get_their_final_status_after_a_restart.
            finally:
                second.terminate()
                await second.wait()
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
            await proxy.stop()


async def _none_scheduled(rig: Rig) -> bool:
    return int(DeliveryState.SCHEDULED) not in await counts_by_state(rig)


async def _all_delivered(rig: Rig, total: int) -> bool:
    return (await counts_by_state(rig)).get(DELIVERED, 0) == total


async def test_messages_the_upstream_took_get_their_final_status_after_a_restart(rig: Rig, smsc_factory, tmp_path):
    total = 300
    # The upstream's carrier sends its receipts 4 s after the submit: our dispatcher stops before they come.
    carrier, carrier_port = await smsc_factory(receipt_delay=4.0)
    with upstream_gateway(tmp_path, carrier_port, rig) as (_, address):
        plan = DeliveryPlan.from_urls([route_url(address, poll_interval=0.5, poll_rate=500)], rig.settings)
        async with run_delivery(rig.store, rig.settings, plan):
            await send_all(rig, total)
            await wait_for(lambda: _counts_are(rig, {SENT: total}), timeout=60, explain=lambda: states_now(rig))
        # A new dispatcher, knowing nothing but the store, follows them to their end.
        async with run_delivery(rig.store, rig.settings, plan) as dispatcher:
            await wait_for(lambda: _all_delivered(rig, total), timeout=60, explain=lambda: states_now(rig))
            connector = dispatcher.lanes[0].connector
            assert connector.stats["receipts"] == total
    assert len(await accepted_by(carrier)) == total


async def _counts_are(rig: Rig, expected: dict[int, int]) -> bool:
    return await counts_by_state(rig) == expected


async def test_reports_pushed_by_the_upstream_finish_messages(rig: Rig, smsc_factory, tmp_path):
    total = 300
    carrier, carrier_port = await smsc_factory()
    # Our API with the route's secret, as `smsgw serve --smsc ROUTE` runs it.
    with LiveServer(rig.settings, upstream_secrets={"up": SECRET}) as ours:
        with upstream_gateway(tmp_path, carrier_port, rig) as (upstream_settings, address):
            # The upstream signs its callbacks with the route's secret, as our own sender does.
            Operator(upstream_settings)._with_store(lambda store: store.set_callback("down", f"{ours.url}/upstream/up/dlr", SECRET))
            # Polling would first ask an hour after each submit: only the pushes can finish them.
            plan = DeliveryPlan.from_urls([route_url(address, poll_interval=3600, secret=SECRET)], rig.settings)
            async with run_delivery(rig.store, rig.settings, plan) as dispatcher:
                await send_all(rig, total)
                await wait_for(
                    lambda: _all_delivered(rig, total),
                    timeout=60,
                    explain=lambda: (
                        states_now(rig),
                        Operator(upstream_settings).sql("SELECT last_error, count(*) FROM callbacks GROUP BY last_error"),
                    ),
                )
                assert dispatcher.lanes[0].connector.stats["getdlr"] == 0
    assert len(await accepted_by(carrier)) == total


async def test_polling_stops_for_a_message_once_a_push_made_it_final(rig: Rig, smsc_factory, tmp_path):
    total = 100
    # The upstream's carrier keeps its receipts for a minute: getdlr says SentToNetwork meanwhile.
    _, carrier_port = await smsc_factory(receipt_delay=60.0)
    with LiveServer(rig.settings, upstream_secrets={"up": SECRET}) as ours:
        with upstream_gateway(tmp_path, carrier_port, rig) as (_, address):
            plan = DeliveryPlan.from_urls([route_url(address, poll_interval=0.3, poll_rate=500, secret=SECRET)], rig.settings)
            async with run_delivery(rig.store, rig.settings, plan) as dispatcher:
                connector = dispatcher.lanes[0].connector
                await send_all(rig, total)
                await wait_for(lambda: connector.stats["getdlr"] >= 2 * total, timeout=60, explain=lambda: dict(connector.stats))
                upstream_ids = await rig.store.read(lambda conn: conn.exec_driver_sql("SELECT smsc_message_id FROM message_parts").scalars().all())
                assert len(upstream_ids) == total
                async with httpx.AsyncClient(timeout=30) as client:
                    for upstream_id in upstream_ids:
                        pushed = await client.post(f"{ours.url}/upstream/up/dlr?secret={SECRET}", content=_report(upstream_id))
                        assert pushed.status_code == 200, pushed.text
                assert await counts_by_state(rig) == {DELIVERED: total}
                await wait_for(lambda: connector.stats["final before asked"] == total, timeout=10, explain=lambda: dict(connector.stats))
                asked = connector.stats["getdlr"]
                await asyncio.sleep(1.5)  # five poll intervals
                assert connector.stats["getdlr"] == asked


def _report(upstream_id: str, description: str = "DeliveredToTerminal") -> bytes:
    return orjson.dumps({"messageid": upstream_id, "clientsmsid": 1, "mobile": "254711000000", "description": description, "status": 3})


def _signed(body: bytes, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    stamp = int(time.time()) - age
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_V2_HEADER: signature_v2(secret, stamp, body)}


@pytest.mark.parametrize(
    ("given_secret", "age", "signed_with", "expected"),
    [
        pytest.param(SECRET, 0, None, True, id="secret-in-the-url"),
        pytest.param("wrong", 0, None, False, id="wrong-secret-in-the-url"),
        pytest.param("", 0, None, False, id="empty-secret-in-the-url"),
        pytest.param(None, 0, SECRET, True, id="signature"),
        pytest.param(None, MAX_REPORT_AGE_SECONDS - 5, SECRET, True, id="signature-nearly-too-old"),
        pytest.param(None, MAX_REPORT_AGE_SECONDS + 1, SECRET, False, id="signature-replayed-too-late"),
        pytest.param(None, -(MAX_REPORT_AGE_SECONDS + 1), SECRET, False, id="signature-from-the-future"),
        pytest.param(None, 0, "another-secret", False, id="signature-with-another-secret"),
        pytest.param(None, 0, None, False, id="nothing"),
    ],
)
def test_pushed_reports_are_authenticated(given_secret, age: int, signed_with, expected: bool):
    body = _report("10000001")
    headers = _signed(body, signed_with, age) if signed_with else {}
    now = time.time()
    assert authentic(SECRET, given_secret, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_V2_HEADER), body, now) is expected


def test_a_signature_of_another_body_is_refused():
    headers = _signed(_report("10000001"))
    assert not authentic(SECRET, None, headers[TIMESTAMP_HEADER], headers[SIGNATURE_V2_HEADER], _report("10000002"), time.time())


@pytest.mark.parametrize(
    ("path", "headers_of", "upstream_id", "status", "recorded"),
    [
        pytest.param("/upstream/up/dlr?secret=" + SECRET, None, "U77", 200, True, id="secret-in-the-url"),
        pytest.param("/upstream/up/dlr", _signed, "U77", 200, True, id="signed"),
        pytest.param("/upstream/up/dlr?secret=wrong", None, "U77", 401, False, id="wrong-secret"),
        pytest.param("/upstream/up/dlr", lambda body: _signed(body, "another-secret"), "U77", 401, False, id="wrong-signature"),
        pytest.param("/upstream/up/dlr", lambda body: _signed(body, age=MAX_REPORT_AGE_SECONDS + 60), "U77", 401, False, id="replayed-too-late"),
        pytest.param("/upstream/up/dlr", None, "U77", 401, False, id="no-credentials"),
        pytest.param("/upstream/elsewhere/dlr?secret=" + SECRET, None, "U77", 404, False, id="unknown-route"),
        pytest.param("/upstream/up/dlr?secret=" + SECRET, None, "U99", 503, False, id="id-not-known-yet"),
    ],
)
async def test_a_pushed_report_is_recorded_only_when_authentic(rig: Rig, path: str, headers_of, upstream_id: str, status: int, recorded: bool):
    message_id = await _submitted_on_route(rig, "U77")
    body = _report(upstream_id)
    with LiveServer(rig.settings, upstream_secrets={"up": SECRET}) as ours:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(ours.url + path, content=body, headers=headers_of(body) if headers_of else {})
    assert response.status_code == status, response.text
    assert (await rig.states())[message_id] == (DELIVERED if recorded else SENT)
    unmatched = await rig.store.read(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM unmatched_receipts").scalar_one())
    assert unmatched == 0


async def test_the_first_final_report_counts(rig: Rig):
    message_id = await _submitted_on_route(rig, "U78")
    with LiveServer(rig.settings, upstream_secrets={"up": SECRET}) as ours:
        async with httpx.AsyncClient(timeout=30) as client:
            url = f"{ours.url}/upstream/up/dlr?secret={SECRET}"
            not_final = await client.post(url, content=_report("U78", "SentToNetwork"))
            assert (await rig.states())[message_id] == SENT
            first = await client.post(url, content=_report("U78", "DeliveredToTerminal"))
            # Another report for it (a poll's, a retried push) changes nothing.
            second = await client.post(url, content=_report("U78", "DeliveryImpossible"))
    assert [r.status_code for r in (not_final, first, second)] == [200, 200, 200]
    assert (await rig.states())[message_id] == DELIVERED


async def _submitted_on_route(rig: Rig, upstream_id: str) -> int:
    """A message the route `up` took as `upstream_id`, as its connector records it."""
    (accepted,) = await send_all(rig, 1)
    message_id = int(accepted["messageid"])
    await rig.store.write(outcomes.record_submitted, [outcomes.Submitted(message_id, "up", [upstream_id], [smsc_id_keys(upstream_id)])], now_ms())
    return message_id
