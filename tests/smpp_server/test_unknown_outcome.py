"""A commit cut off with its outcome unknown: the partner SMPP server asks the store whether
the message is there before it answers, since ESME_RSYSERR tells the ESME to send it again."""

from __future__ import annotations

import orjson

from smsgw.connectors.smpp.pdu import ESME_ROK, ESME_RSYSERR
from smsgw.domain.states import PRIORITY_BULK
from smsgw.service.acceptance import Acceptance
from smsgw.smpp_server.server import PartnerSmppServer
from smsgw.store.store import open_store


async def test_a_stored_message_is_answered_with_its_id_and_a_missing_one_as_not_accepted(settings, operator):
    operator.partner("p1", credits=100_00, shortcode="SC1")
    operator.partner("p2", credits=100_00, shortcode="SC2")
    store = open_store(settings)
    await store.prepare()
    try:
        acceptance = Acceptance(settings, store)
        server = PartnerSmppServer(settings, acceptance)
        p1, p2 = await store.get_partner("p1"), await store.get_partner("p2")
        answer = await acceptance.submit(
            p1, "SC1", [{"mobile": "0712345670", "message": "hi"}], priority=PRIORITY_BULK, mobile_as_number=False, idempotency=None, kind="submit_sm"
        )
        message_id = orjson.loads(answer)["responses"][0]["messageid"]
        assert await server._settle_unknown(p1, message_id) == (ESME_ROK, message_id)
        assert await server._settle_unknown(p1, str(int(message_id) + 1000)) == (ESME_RSYSERR, "")
        assert await server._settle_unknown(p2, message_id) == (ESME_RSYSERR, "")  # another partner's id is not its
    finally:
        await store.close()
