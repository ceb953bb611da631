"""Two-way messaging against an independent SMSC (smpp34.Server, a Rust SMPP
implementation): its deliver_sm reach the partner's endpoint, and the auto-reply reaches it
as a submit_sm from the shortcode."""

from __future__ import annotations

import orjson

from smsgw.api.acceptance import Acceptance
from smsgw.api.auto_reply import AutoReplies
from smsgw.connectors.smpp.segments import message_parts
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery
from smsgw.domain.encoding import Encoding
from smsgw.store import inbound

from ..connectors.conftest import Smpp34Peer
from ..dispatch.conftest import Rig, wait_for
from .conftest import PartnerEndpoint


async def test_a_long_message_from_smpp34_is_forwarded_whole_and_answered(rig: Rig):
    peer = Smpp34Peer()
    port = await peer.start()
    endpoint = PartnerEndpoint(reply="Asante!")
    await rig.store.write(inbound.set_endpoint, "p1", endpoint.url, "POST", True)
    text = ("Habari, naomba salio langu la mwezi huu 😀 " * 4).strip()  # UCS-2, three parts
    parts = message_parts(text, Encoding.UCS2, concatenation="udh", reference=42)
    assert len(parts) == 3
    plan = DeliveryPlan.from_urls([f"smpp://smsgw:secret@127.0.0.1:{port}?name=smpp34"], rig.settings)
    replies = AutoReplies(Acceptance(rig.settings, rig.store, plan.routed_networks(rig.settings)))
    statuses = []
    try:
        async with run_delivery(rig.store, rig.settings, plan, auto_reply=replies):
            esme = await wait_for(lambda: next((e for e in peer._sessions.values() if e.can_receive), None), timeout=15)
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
        await peer.stop()
    assert statuses == [0, 0, 0]
    (request,) = endpoint.requests
    assert orjson.loads(request["body"]) == {"shortcode": "SC1", "mobile": "254712001000", "message": text}
    (reply,) = [p for p in peer.parts() if p.destination == "254712001000"]
    assert reply.text == "Asante!"
    assert rig.operator.sql("SELECT shortcode, text, cost FROM messages") == [("SC1", "Asante!", 100)]
