"""A gateway killed with SIGKILL while a subscriber's deliver_sm is unanswered loses nothing
and forwards each message once: the carrier (our simulator, or smpp34.Server, in this process)
resends what it got no deliver_sm_resp for to the restarted `smsgw serve`, and the partner's
endpoint (a real HTTP server on loopback) sees every message exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import orjson
import pytest
import smpp34

from smsgw.connectors.smpp.simulator import SmscSimulator
from smsgw.store import inbound

from ..connectors.conftest import LOOPBACK, Smpp34Peer
from ..faults import write_lock_held
from ..helpers import Operator, free_port, make_settings, start_serve, wait_for
from .conftest import PartnerEndpoint

# Short leases: the restarted gateway may bind the carrier soon after the killed one's lease.
GATEWAY_ENV = {"SMSGW_BIND_LEASE_SECONDS": "2", "SMSGW_LEASE_SECONDS": "2"}


def forwarded_texts(endpoint: PartnerEndpoint) -> list[str]:
    return [orjson.loads(request["body"])["message"] for request in endpoint.requests]


class SimulatorCarrier:
    """Our simulator: it resends by itself a deliver_sm whose connection ended unanswered."""

    def __init__(self) -> None:
        self.simulator = SmscSimulator(redelivery_delay=0.2)

    async def start(self) -> int:
        return await self.simulator.start(LOOPBACK, 0)

    async def stop(self) -> None:
        await self.simulator.stop()

    def binds(self) -> int:
        return self.simulator.binds

    async def deliver(self, source: str, text: str) -> None:
        """Sends and waits for the answer."""
        acked = self.simulator.receipts_acked
        self.simulator.send_inbound(source, "SC1", text)
        await wait_for(lambda: self.simulator.receipts_acked > acked, 20, f"the answer to {text!r}")

    async def deliver_unanswered(self, source: str, text: str) -> None:
        """Sends; the gateway must not answer (it cannot store)."""
        sent, acked = self.simulator.receipts_sent, self.simulator.receipts_acked
        self.simulator.send_inbound(source, "SC1", text)
        await wait_for(lambda: self.simulator.receipts_sent > sent, 10, "the deliver_sm on the wire")
        await asyncio.sleep(0.5)  # the gateway has read it and waits for the store
        assert self.simulator.receipts_acked == acked, "the gateway answered a deliver_sm it could not have stored"

    async def resend_unanswered(self) -> None:
        pass  # the simulator does, on the new bind


class Smpp34Carrier:
    """smpp34.Server: the test resends, on the new session, what was left unanswered."""

    def __init__(self) -> None:
        self.peer = Smpp34Peer()
        self.sessions_seen: set[str] = set()
        self.unanswered: list[tuple[str, str, asyncio.Task]] = []

    async def start(self) -> int:
        return await self.peer.start()

    async def stop(self) -> None:
        await self.peer.stop()

    def _receiver(self) -> smpp34.Esme | None:
        for esme in list(self.peer._sessions.values()):
            if esme.can_receive:
                self.sessions_seen.add(esme.session_id)
        return next((e for e in reversed(list(self.peer._sessions.values())) if e.can_receive), None)

    def binds(self) -> int:
        self._receiver()
        return len(self.sessions_seen)

    async def _send(self, esme: smpp34.Esme, source: str, text: str) -> int:
        response = await esme.deliver_sm("SC1", text.encode(), source_addr=source, source_addr_ton=1, source_addr_npi=1)
        return response.command_status

    async def deliver(self, source: str, text: str) -> None:
        esme = self._receiver()
        assert esme is not None
        assert await asyncio.wait_for(self._send(esme, source, text), 20) == 0

    async def deliver_unanswered(self, source: str, text: str) -> None:
        esme = self._receiver()
        assert esme is not None
        task = asyncio.create_task(self._send(esme, source, text))
        await asyncio.sleep(1.0)  # on the wire, read by the gateway, which waits for the store
        # Still unanswered, or refused (ESME_RSYSERR once the store stays locked past its busy
        # timeout, which a loaded machine reaches): either way the carrier sends it again.
        accepted = task.done() and task.exception() is None and task.result() == 0
        assert not accepted, "the gateway accepted a deliver_sm it could not have stored"
        self.unanswered.append((source, text, task))

    async def resend_unanswered(self) -> None:
        for source, text, task in self.unanswered:
            # The old session died with the gateway: its deliver_sm gets no answer now.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
            await self.deliver(source, text)


@pytest.mark.parametrize("carrier_kind", [SimulatorCarrier, Smpp34Carrier], ids=["simulator", "smpp34"])
async def test_sigkill_between_deliver_sm_and_its_answer_loses_nothing_and_forwards_once(tmp_path, database_url, carrier_kind):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", shortcode="SC1")
    endpoint = PartnerEndpoint()
    operator._with_store(lambda store: store.write(inbound.set_endpoint, "p1", endpoint.url, "POST", False))
    carrier = carrier_kind()
    carrier_port = await carrier.start()
    env = dict(GATEWAY_ENV, SMSGW_DATABASE_URL=settings.database_url.raw)
    smsc = ["--smsc", f"smpp://smsgw:secret@{LOOPBACK}:{carrier_port}?name=carrier"]
    port = free_port()
    gateway = await asyncio.to_thread(start_serve, env, port, tmp_path, smsc)
    try:
        await wait_for(lambda: carrier.binds() >= 1, 20, "the gateway's bind")

        # Stored and answered, but the answer never reached the carrier (lost with the
        # connection): the carrier will send it again.
        await carrier.deliver("254712000001", "answered before the kill")
        await wait_for(lambda: forwarded_texts(endpoint) == ["answered before the kill"], 20, "the first forward")
        await wait_for(lambda: operator.sql("SELECT count(*) FROM inbound_messages WHERE forwarded_at IS NOT NULL") == [(1,)], 10, "its record")

        # Received, not yet stored (the store is held by another session), so not answered:
        # the gateway dies in between.
        with write_lock_held(settings):
            await carrier.deliver_unanswered("254712000002", "unanswered at the kill")
            gateway.send_signal(signal.SIGKILL)
            await asyncio.to_thread(gateway.wait, 10)
        assert operator.sql("SELECT text FROM inbound_messages ORDER BY id") == [("answered before the kill",)]

        binds = carrier.binds()
        gateway = await asyncio.to_thread(start_serve, env, port, tmp_path, smsc)
        await wait_for(lambda: carrier.binds() > binds, 30, "the restarted gateway's bind")
        await carrier.resend_unanswered()
        await carrier.deliver("254712000001", "answered before the kill")  # the carrier's resend of the lost answer
        await wait_for(lambda: "unanswered at the kill" in forwarded_texts(endpoint), 30, "the resent message's forward")
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


async def test_a_message_stored_but_never_answered_is_forwarded_once_however_late_the_carrier_resends_it(tmp_path, database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", shortcode="SC1")
    endpoint = PartnerEndpoint()
    operator._with_store(lambda store: store.write(inbound.set_endpoint, "p1", endpoint.url, "POST", False))
    # The window is 1 s; the carrier resends what it got no answer for 5 s after the bind ended.
    simulator = SmscSimulator(redelivery_delay=5)
    carrier_port = await simulator.start(LOOPBACK, 0)
    env = dict(GATEWAY_ENV, SMSGW_DATABASE_URL=settings.database_url.raw, SMSGW_INBOUND_DUPLICATE_SECONDS="1")
    smsc = ["--smsc", f"smpp://smsgw:secret@{LOOPBACK}:{carrier_port}?name=carrier"]
    port = free_port()
    gateway = await asyncio.to_thread(start_serve, env, port, tmp_path, smsc)
    carrier = SimulatorCarrier()
    carrier.simulator = simulator
    try:
        await wait_for(lambda: simulator.binds >= 1, 20, "the gateway's bind")

        # Answered: the subscriber sending the same text again past the window is a new message.
        await carrier.deliver("254712000001", "see you")
        await wait_for(lambda: forwarded_texts(endpoint) == ["see you"], 20, "the first forward")
        await asyncio.sleep(1.2)
        await carrier.deliver("254712000001", "see you")
        await wait_for(lambda: forwarded_texts(endpoint) == ["see you", "see you"], 20, "both forwards")

        # Stored, never answered: the carrier stops waiting for the answer and drops the bind
        # while the store is held, then the store takes the message, with nobody to answer.
        acked = simulator.receipts_acked
        with write_lock_held(settings):
            await carrier.deliver_unanswered("254712000002", "stored, never answered")
            connections = simulator.connections
            for session in list(simulator._sessions):
                session.abort("no deliver_sm_resp in time")
            # Reconnecting, the gateway has seen its connection end.
            await wait_for(lambda: simulator.connections > connections, 10, "the gateway's reconnection")
        await wait_for(lambda: forwarded_texts(endpoint)[2:] == ["stored, never answered"], 20, "its forward")
        assert simulator.receipts_acked == acked, "the carrier got an answer on a connection it had dropped"
        # The gateway then dies, and is down past the window when the carrier resends.
        gateway.send_signal(signal.SIGKILL)
        await asyncio.to_thread(gateway.wait, 10)
        gateway = await asyncio.to_thread(start_serve, env, port, tmp_path, smsc)
        await wait_for(lambda: simulator.receipts_acked > acked, 30, "the answer to the carrier's resend")
        deadline = time.monotonic() + 2  # room for a second forward, if there were one
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        if gateway.returncode is None:
            gateway.terminate()
            await asyncio.to_thread(gateway.wait, 20)
        await simulator.stop()
        endpoint.close()
    assert forwarded_texts(endpoint) == ["see you", "see you", "stored, never answered"]
    assert operator.sql("SELECT text FROM inbound_messages ORDER BY id") == [("see you",), ("see you",), ("stored, never answered",)]
    # Every deliver_sm is answered now: only the window recognises their resends.
    assert operator.sql("SELECT count(*) FROM inbound_messages WHERE answered_at IS NULL") == [(0,)]
