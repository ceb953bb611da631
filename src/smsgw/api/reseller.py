"""Reseller and message-control routes of the partner API: `credit` (the providers' call for
moving credit to a child account), `getchildren` and `cancel` (ours).

Each handler takes the request; the app's state carries the store and the acceptance service
(who is asking). `create_app` registers them through the same route helper as the rest of the
partner API, so failures get the contract's bare error objects.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from ..domain.codes import Code
from ..domain.money import format_count, format_units, parse_amount
from ..domain.states import DeliveryState
from ..store import accounts
from ..store.errors import IdempotencyConflict
from . import schemas
from .acceptance import Acceptance, id_text, idempotency_key
from .bodies import BadRequest, parameters
from .responses import JSONBytes, Responder

Handler = Callable[[Request], Awaitable[Response]]
# The providers' own wording, spelling included.
CHILD_INVALID = "The child acount is invalid. Kindly verify the details"
DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366


def message_id_field(fields: dict[str, Any]) -> int | None:
    """The `messageID` of getdlr and cancel: None when it cannot name a message (answered as a
    message that does not exist); BadRequest(1009) when missing or not a string or number."""
    try:
        text = id_text(fields.get("messageID", fields.get("messageid")))
    except TypeError:
        raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "messageID must be a string or a number") from None
    if text is None:
        raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "messageID missing")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def routes(settings: Settings, responder: Responder) -> list[tuple[str, Handler, str, type, dict[Any, Any]]]:
    """(path, handler, summary, request model, answer docs) of each route, all POST."""
    limit = settings.max_body_bytes
    render = responder.render

    def acceptance(request: Request) -> Acceptance:
        return request.app.state.acceptance

    async def credit(request: Request) -> Response:
        """Move credit to one of the caller's child accounts: `amount` is money, turned into
        units at the child's rate (rounded down to a hundredth of a unit)."""
        key = idempotency_key(request.headers.get("idempotency-key"))
        fields = await parameters(request, limit)
        gateway = acceptance(request)
        reseller = await gateway.authenticate(fields)
        fingerprint = hashlib.sha256(request.url.query.encode() + b" " + await request.body()).hexdigest()
        if key is not None:
            replayed = await gateway.stored_answer(reseller, key, fingerprint)
            if replayed is not None:
                return JSONBytes(replayed)
        try:
            child_id = id_text(fields.get("childID"))
        except TypeError:
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "childID must be a string or a number") from None
        if child_id is None:
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "childID missing")
        raw_amount = fields.get("amount")
        if isinstance(raw_amount, bool) or not isinstance(raw_amount, (str, int, float)):
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "amount must be a number or a string such as '500' or '12.50'")
        try:
            amount = parse_amount(str(raw_amount))
        except ValueError as exc:
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, f"amount: {exc}") from None

        def answer(done: accounts.Transferred) -> bytes:
            units = format_count(done.units)
            return render(
                {
                    "response-code": 200,
                    "response-description": f"Partner ID {child_id} has been credited with {units} units",
                    "prev-balance": format_units(done.child_balance_before),
                    "sms-units": units,
                    "new-balance": format_units(done.child_balance_after),
                }
            )

        try:
            outcome, body = await accounts.transfer(gateway.store, reseller.id, child_id, amount, answer, (key, fingerprint) if key else None)
        except IdempotencyConflict:
            assert key is not None
            replayed = await gateway.stored_answer(reseller, key, fingerprint)
            if replayed is None:
                raise BadRequest(Code.TRY_AGAIN_LATER) from None
            return JSONBytes(replayed)
        if isinstance(outcome, accounts.NoSuchAccount):
            raise BadRequest(Code.DETAILS_NOT_FOUND, f"no partner {child_id}")
        if isinstance(outcome, accounts.NotChild):
            return JSONBytes(render({"response-code": int(Code.MESSAGE_SYSTEM_ERROR), "response-description": CHILD_INVALID}))
        if isinstance(outcome, accounts.BuysNothing):
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "amount buys less than a hundredth of a unit at the child's rate")
        if isinstance(outcome, accounts.ResellerShort):
            raise BadRequest(Code.LOW_CREDIT, f"Balance {format_units(outcome.balance)}, required {format_units(outcome.required)}")
        assert body is not None
        return JSONBytes(body)

    async def getchildren(request: Request) -> Response:
        """The caller's child accounts with balances and what each did over the last `days`
        (default 30), from the ledger. Never their keys or messages."""
        fields = await parameters(request, limit)
        gateway = acceptance(request)
        reseller = await gateway.authenticate(fields)
        days = fields.get("days", DEFAULT_PERIOD_DAYS)
        if isinstance(days, str) and days.strip().isascii() and days.strip().isdigit():
            days = int(days.strip())
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_PERIOD_DAYS:
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, f"days must be a whole number from 1 to {MAX_PERIOD_DAYS}")
        since = int(time.time() * 1000) - days * 86_400_000
        children = await gateway.store.read(accounts.children, reseller.id, since)
        return JSONBytes(
            render(
                {
                    "response-code": 200,
                    "response-description": "Success",
                    "partner-id": reseller.id,
                    "period-days": days,
                    "children": [
                        {
                            "partner-id": c.id,
                            "name": c.name,
                            "status": c.status,
                            "credit": format_units(c.balance),
                            "rate": format_units(c.rate),
                            "messages-accepted": c.messages_accepted,
                            "units-charged": format_units(c.units_charged),
                            "messages-refunded": c.messages_refunded,
                            "units-refunded": format_units(c.units_refunded),
                            "units-received": format_units(c.units_received),
                        }
                        for c in children
                    ],
                }
            )
        )

    async def cancel(request: Request) -> Response:
        """Cancel one of the caller's messages that is still Scheduled and not yet taken by a
        dispatcher; its units are refunded. Anything else gets getdlr's 1008."""
        fields = await parameters(request, limit)
        gateway = acceptance(request)
        partner = await gateway.authenticate(fields)
        message_id = message_id_field(fields)
        if message_id is None:
            raise BadRequest(Code.NO_DELIVERY_REPORT)
        cancelled = await gateway.store.write(accounts.cancel_scheduled, partner.id, message_id)
        if cancelled is None:
            raise BadRequest(Code.NO_DELIVERY_REPORT)
        return JSONBytes(
            render(
                {
                    "response-code": 200,
                    "response-description": "Success",
                    "message-id": str(message_id),
                    "delivery-status": int(DeliveryState.CANCELLED),
                    "delivery-description": DeliveryState.CANCELLED.description,
                    "refunded": format_units(cancelled.refunded),
                    "credit": format_units(cancelled.balance),
                }
            )
        )

    return [
        (
            "/api/services/credit",
            credit,
            "Move credit to a child account",
            schemas.CreditRequest,
            schemas.answer_doc(schemas.CreditResponse, "The child's balances."),
        ),
        (
            "/api/services/getchildren",
            getchildren,
            "A reseller's child accounts",
            schemas.ChildrenRequest,
            schemas.answer_doc(schemas.ChildrenResponse, "The children."),
        ),
        (
            "/api/services/cancel",
            cancel,
            "Cancel a scheduled message",
            schemas.DlrRequest,
            schemas.answer_doc(schemas.CancelResponse, "The cancelled message."),
        ),
    ]
