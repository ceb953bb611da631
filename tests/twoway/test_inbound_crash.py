"""A gateway killed with SIGKILL while subscribers' deliver_sm are unanswered loses none of
them and forwards each once: the carrier (our simulator, in this process) resends what it got
no deliver_sm_resp for to the restarted gateway, and the partner's endpoint (a real HTTP
server on loopback) sees every message exactly once."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson

from smsgw.connectors.smpp.simulator import SmscSimulator
from smsgw.store import inbound

from ..connectors.conftest import LOOPBACK, eventually
from ..faults import write_lock_held
from ..helpers import Operator, free_port, make_settings, start_serve
from .conftest import PartnerEndpoint

# Short leases: the restarted gateway may bind the carrier soon after the killed one's lease.
GATEWAY_ENV = {"SMSGW_BIND_LEASE_SECONDS": "2", "SMSGW_LEASE_SECONDS": "2"}


def forwarded_texts(endpoint: PartnerEndpoint) -> list[str]:
    return [orjson.loads(request["body"])["message"] for request in endpoint.requests]


async def test_sigkill_between_deliver_sm_and_its_answer_loses_nothing_and_forwards_once(tmp_path, database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", shortcode="SC1")
    endpoint = PartnerEndpoint()
    operator._with_store(lambda store: store.write(inbound.set_endpoint, "p1", endpoint.url, "POST", False))
    carrier = SmscSimulator(redelivery_delay=0.2)
    carrier_port = await carrier.start(LOOPBACK, 0)
    env = dict(GATEWAY_ENV, SMSGW_DATABASE_URL=settings.database_url.raw)
    smsc = ["--smsc", f"smpp://smsgw:secret@{LOOPBACK}:{carrier_port}?name=carrier"]
    port = free_port()
    gateway = await asyncio.to_thread(start_serve, env, port, tmp_path, smsc)
    try:
        await eventually(lambda: carrier.binds >= 1, 20, "the gateway's bind")

        # Stored and answered, but the answer never reached the carrier (lost with the
        # connection): the carrier will send it again.
        carrier.send_inbound("254712000001", "SC1", "answered before the kill")
        await eventually(lambda: forwarded_texts(endpoint) == ["answered before the kill"], 20, "the first forward")
        await eventually(lambda: operator.sql("SELECT count(*) FROM inbound_messages WHERE forwarded_at IS NOT NULL") == [(1,)], 10, "its record")

        # Received, not yet stored (the store is held by another session), so not answered:
        # the gateway dies in between.
        acked = carrier.receipts_acked
        with write_lock_held(settings):
            sent = carrier.receipts_sent
            carrier.send_inbound("254712000002", "SC1", "unanswered at the kill")
            await eventually(lambda: carrier.receipts_sent > sent, 10, "the deliver_sm on the wire")
            await asyncio.sleep(0.5)  # the gateway has read it and waits for the store
            assert carrier.receipts_acked == acked, "the gateway answered a deliver_sm it could not have stored"
            gateway.send_signal(signal.SIGKILL)
            await asyncio.to_thread(gateway.wait, 10)
        assert operator.sql("SELECT text FROM inbound_messages ORDER BY id") == [("answered before the kill",)]

        binds = carrier.binds
        gateway = await asyncio.to_thread(start_serve, env, port, tmp_path, smsc)
        await eventually(lambda: carrier.binds > binds, 30, "the restarted gateway's bind")
        carrier.send_inbound("254712000001", "SC1", "answered before the kill")  # the carrier's resend of the lost answer
        await eventually(lambda: "unanswered at the kill" in forwarded_texts(endpoint), 30, "the resent message's forward")
        await eventually(lambda: carrier.receipts_acked >= acked + 2, 10, "both resends answered")
        deadline = time.monotonic() + 2  # room for a second forward, if there were one
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        if gateway.returncode is None:
            gateway.terminate()
            await asyncio.to_thread(gateway.wait, 20)
        await carrier.stop()
        endpoint.close()
    assert sorted(forwarded_texts(endpoint)) == ["answered before the kill", "unanswered at the kill"]
    stored = operator.sql("SELECT msisdn, text, forwarded_at IS NOT NULL FROM inbound_messages ORDER BY id")
    assert stored == [("254712000001", "answered before the kill", True), ("254712000002", "unanswered at the kill", True)]
