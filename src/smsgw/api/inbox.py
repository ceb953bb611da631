"""`getinbox` (ours; the providers have no such call): the messages subscribers sent to the
partner's shortcodes, oldest first, paged by id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from ..domain.codes import Code
from ..domain.reports import local_time
from ..store import inbound
from .acceptance import Acceptance, id_text
from .bodies import BadRequest, parameters
from .state import responder_of

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _whole_number(fields: dict, name: str, default: int, low: int, high: int) -> int:
    try:
        raw = id_text(fields.get(name))
    except TypeError:
        raw = "x"
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def getinbox_handler(settings: Settings, acceptance: Callable[[Request], Acceptance]) -> Callable[[Request], Awaitable[Response]]:
    async def getinbox(request: Request) -> Response:
        """The partner's inbound messages with ids above `since`, oldest first, at most `limit`."""
        fields = await parameters(request, settings.max_body_bytes)
        gateway = acceptance(request)
        partner = await gateway.authenticate(fields)
        since = _whole_number(fields, "since", 0, 0, 2**63 - 1)
        limit = _whole_number(fields, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        entries = await gateway.store.read(inbound.inbox, partner.id, since, limit)
        messages = [
            {
                "id": str(e.id),
                "shortcode": e.shortcode,
                "mobile": e.msisdn,
                "message": e.text,
                "keyword": e.keyword,
                "complete": e.complete,
                "received": local_time(e.received_at, settings.timezone),
                "forwarded": e.forwarded_at is not None,
            }
            for e in entries
        ]
        return responder_of(request).answer({"response-code": 200, "response-description": "Success", "messages": messages})

    return getinbox
