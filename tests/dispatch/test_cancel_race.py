"""A cancel racing the dispatcher either cancels (the message is never sent) or answers 1008
(it was sent), never both."""

from __future__ import annotations

import asyncio

import httpx

from smsgw.dispatch.dispatcher import DispatchSettings
from smsgw.domain.states import DeliveryState

from ..helpers import DEFAULT_KEY, entry, wait_for
from .conftest import Rig, number

MESSAGES = 200
CANCELLED = int(DeliveryState.CANCELLED)


async def test_cancel_racing_the_dispatcher_never_cancels_a_sent_message(rig: Rig):
    entries = [entry(number(i), f"race {i}") for i in range(MESSAGES)]
    async with rig.delivering(DispatchSettings(batch_size=10), window=4):
        answers = await rig.send(entries)
        ids = [a["messageid"] for a in answers]
        # Newest first: the dispatcher claims oldest first, so both outcomes occur.
        async with httpx.AsyncClient(timeout=60) as client:
            replies = await asyncio.gather(
                *(
                    client.post(rig.api_url + "/api/services/cancel", json={"partnerID": "p1", "apikey": DEFAULT_KEY, "messageID": m})
                    for m in reversed(ids)
                )
            )
        outcome = dict(zip(reversed(ids), (r.json()["response-code"] for r in replies)))
        await wait_for(lambda: _all_final(rig), timeout=60)
    states = await rig.states()
    sent_texts = set(rig.simulator.texts)
    cancelled = [m for m in ids if outcome[m] == 200]
    refused = [m for m in ids if outcome[m] == 1008]
    assert len(cancelled) + len(refused) == MESSAGES
    for i, message_id in enumerate(ids):
        if outcome[message_id] == 200:
            assert states[int(message_id)] == CANCELLED and f"race {i}" not in sent_texts
        else:
            assert states[int(message_id)] != CANCELLED and f"race {i}" in sent_texts
    assert cancelled and refused, (len(cancelled), len(refused))
    assert rig.operator.balance("p1") == 1_000_000_00 - 100 * len(refused)


async def _all_final(rig: Rig) -> bool:
    return all(DeliveryState(s).is_final for s in (await rig.states()).values())
