"""Two-way messaging against an independent SMSC (smpp34.Server, a Rust SMPP
implementation): its deliver_sm reach the right partner's endpoint, signed, and the
auto-reply reaches it as a submit_sm from the shortcode, charged."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import orjson
import smpp34

from smsgw.api.acceptance import Acceptance
from smsgw.api.auto_reply import AutoReplies
from smsgw.connectors.smpp.segments import message_parts
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery
from smsgw.domain.encoding import Encoding
from smsgw.store import inbound, optout

from ..connectors.conftest import Smpp34Peer
from ..dispatch.conftest import Rig
from ..helpers import wait_for
from .conftest import PartnerEndpoint

SECRET = "inbound-secret-for-the-test"


@contextlib.asynccontextmanager
async def bound_to_smpp34(rig: Rig) -> AsyncIterator[tuple[Smpp34Peer, smpp34.Esme]]:
    """Delivery as `smsgw serve` runs it (auto-replies on), bound to smpp34.Server; yields the
    peer and the gateway's session on it that can take deliver_sm."""
    peer = Smpp34Peer()
    port = await peer.start()
    plan = DeliveryPlan.from_urls([f"smpp://smsgw:secret@127.0.0.1:{port}?name=smpp34"], rig.settings)
    replies = AutoReplies(Acceptance(rig.settings, rig.store, plan.routed_networks(rig.settings)))
    try:
        async with run_delivery(rig.store, rig.settings, plan, auto_reply=replies):
            esme = await wait_for(lambda: next((e for e in peer._sessions.values() if e.can_receive), None), timeout=15)
            yield peer, esme
    finally:
        await peer.stop()


async def test_a_long_message_from_smpp34_is_forwarded_whole_and_answered(rig: Rig):
    endpoint = PartnerEndpoint(reply="Asante!")
    await rig.store.write(inbound.set_endpoint, "p1", endpoint.url, "POST", True)
    text = ("Habari, naomba salio langu la mwezi huu 😀 " * 4).strip()  # UCS-2, three parts
    parts = message_parts(text, Encoding.UCS2, concatenation="udh", reference=42)
    assert len(parts) == 3
    statuses = []
    try:
        async with bound_to_smpp34(rig) as (peer, esme):
            for index in (1, 2, 0):
                part = parts[index]
                response = await esme.deliver_sm(
                    "SC1",
                    part.short_message,
                    source_addr="254712001000",
                    source_addr_ton=1,
                    source_addr_npi=1,
                    esm_class=part.esm_class,
                    data_coding=8,
                )
                statuses.append(response.command_status)
            await wait_for(lambda: any(p.destination == "254712001000" for p in peer.parts()), timeout=20)
    finally:
        endpoint.close()
    assert statuses == [0, 0, 0]
    (request,) = endpoint.requests
    assert orjson.loads(request["body"]) == {"shortcode": "SC1", "mobile": "254712001000", "message": text}
    (reply,) = [p for p in peer.parts() if p.destination == "254712001000"]
    assert (reply.source, reply.text) == ("SC1", "Asante!")
    assert rig.operator.sql("SELECT shortcode, text, cost FROM messages") == [("SC1", "Asante!", 100)]


async def test_a_keyword_on_a_shared_shortcode_from_smpp34_reaches_its_partner_signed_and_is_answered(rig: Rig):
    rig.operator.partner("p2", credits=1000_00)
    rig.operator.partner("p3", credits=1000_00)
    endpoint = PartnerEndpoint(reply="You are subscribed to NEWS")
    other = PartnerEndpoint(reply="not for you")
    await rig.store.set_callback("p2", None, SECRET)
    await rig.store.write(inbound.set_endpoint, "p2", endpoint.url, "GET", True)
    await rig.store.write(inbound.set_endpoint, "p3", other.url, "POST", True)
    await rig.store.write(optout.add_keyword, "22000", "NEWS", "p2", 0)
    await rig.store.write(optout.add_keyword, "22000", "JOBS", "p3", 0)
    try:
        async with bound_to_smpp34(rig) as (peer, esme):
            response = await esme.deliver_sm("22000", b"News, please!", source_addr="254712001100", source_addr_ton=1, source_addr_npi=1)
            assert response.command_status == 0
            await wait_for(lambda: any(p.destination == "254712001100" for p in peer.parts()), timeout=20)
            await wait_for(lambda: peer.receipts_answered, timeout=20)
    finally:
        endpoint.close()
        other.close()
    (request,) = endpoint.requests
    assert request["method"] == "GET"
    fields = {"shortcode": "22000", "msisdn": "254712001100", "message": "News, please!", "partnerId": "p2"}
    assert dict(parse_qsl(request["query"])) == fields
    assert request["signature"] == hmac.new(SECRET.encode(), request["query"].encode(), hashlib.sha256).hexdigest()
    assert other.requests == []  # JOBS's partner gets nothing of NEWS
    (reply,) = [p for p in peer.parts() if p.destination == "254712001100"]
    assert (reply.source, reply.text) == ("22000", "You are subscribed to NEWS")
    assert (rig.operator.balance("p2"), rig.operator.balance("p3")) == (1000_00 - 100, 1000_00)
    assert peer.receipts_answered == [0]  # the reply's receipt, taken by the gateway
