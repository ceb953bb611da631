"""Auto-replies: a partner endpoint's answer to an inbound message goes back to the subscriber
from the same shortcode, through the acceptance path like any message (checked, charged,
opt-out list applied), at most once per inbound message."""

from __future__ import annotations

import hashlib
import logging

import orjson

from ..domain.codes import Code
from ..domain.states import PRIORITY_BULK
from ..store import inbound
from ..store.errors import StoreUnavailable
from ..store.inbound import DueForward
from ..store.store import Shortcode
from .acceptance import Acceptance
from .bodies import BadRequest

log = logging.getLogger(__name__)


class AutoReplies:
    def __init__(self, acceptance: Acceptance) -> None:
        self.acceptance = acceptance
        self.store = acceptance.store

    async def __call__(self, forward: DueForward, text: str) -> None:
        """Sends `text` to the subscriber of `forward`; refusals (credit, suspended partner,
        opted-out number) are logged with their reason. StoreUnavailable when the store could
        not take it, so that the caller tries again later."""
        partner = await self.store.get_partner(forward.partner_id)
        if partner is None or not partner.active:
            log.warning("inbound message %d: no auto-reply, partner %s is not active", forward.id, forward.partner_id)
            return
        # A keyword on a shared shortcode lets its partner answer from that shortcode, which
        # is not otherwise its sender id.
        shared = Shortcode(forward.shortcode, partner.id, None) if forward.keyword is not None else None
        # The key makes a forward that is retried after its reply was stored reply only once.
        idempotency = (f"auto-reply {forward.id}", hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
        try:
            answer = await self.acceptance.submit(
                partner,
                forward.shortcode,
                [{"mobile": forward.msisdn, "message": text}],
                priority=PRIORITY_BULK,
                mobile_as_number=False,
                idempotency=idempotency,
                kind="auto-reply",
                shared_sender=shared,
            )
        except BadRequest as refused:
            if refused.code == Code.TRY_AGAIN_LATER:
                raise StoreUnavailable("auto-reply not accepted: store unavailable") from None
            log.warning("inbound message %d: auto-reply of %s refused: %s %s", forward.id, partner.id, int(refused.code), refused.detail or "")
            return
        entry = orjson.loads(answer)["responses"][0]
        if entry["response-code"] != 200:
            log.warning(
                "inbound message %d: auto-reply of %s refused: %s %s", forward.id, partner.id, entry["response-code"], entry["response-description"]
            )
            return
        await self.store.write(inbound.record_reply, forward.id, int(entry["messageid"]))
