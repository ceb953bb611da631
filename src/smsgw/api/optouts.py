"""`checkoptout` (ours; the providers have no such call): which of some numbers are on the
partner's opt-out list for one of its shortcodes, so that a client can tell before sending
which entries would get 1011. It answers from the caller's own list only, and only about the
numbers asked: a partner learns nothing of another partner's list, nor its own list whole.
It also says whether the shortcode is promotional and which footer each network appends then,
so that a dry run counts the footer in parts and price as acceptance will."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from ..store import optout
from ..store.store import Shortcode
from .acceptance import Acceptance
from .bodies import mobile_numbers, parameters
from .state import responder_of


def promotional_footers(settings: Settings, shortcode: Shortcode) -> dict[int, str]:
    """The opt-out footer each network id appends to the shortcode's messages (none unless it is promotional)."""
    if not shortcode.promotional:
        return {}
    return {
        network.id: network.promo_footer
        for network in settings.networks.networks.values()
        if network.promo_footer and (shortcode.networks is None or network.id in shortcode.networks)
    }


def checkoptout_handler(settings: Settings, acceptance: Callable[[Request], Acceptance]) -> Callable[[Request], Awaitable[Response]]:
    async def checkoptout(request: Request) -> Response:
        """The numbers of `mobile` (as sent, in their order) that would get 1011 from `shortcode`."""
        fields = await parameters(request, settings.max_body_bytes)
        gateway = acceptance(request)
        partner = await gateway.authenticate(fields)
        shortcode = await gateway.own_shortcode(partner, fields.get("shortcode"))
        normaliser = settings.networks.normaliser
        asked: list[tuple[Any, str]] = []  # (number as sent, international digits)
        for number in mobile_numbers(fields.get("mobile"), settings.max_bulk_messages):
            if isinstance(number, bool) or not isinstance(number, (str, int)):
                continue  # not a number: never on a list
            normalised = normaliser.normalise(str(number))
            if normalised is not None:
                asked.append((number, normalised.digits))
        listed = await gateway.store.read(optout.listed, partner.id, shortcode.shortcode, [digits for _, digits in asked])
        opted_out = [number for number, digits in asked if digits in listed]
        footers = {str(network_id): footer for network_id, footer in promotional_footers(settings, shortcode).items()}
        return responder_of(request).answer(
            {
                "response-code": 200,
                "response-description": "Success",
                "shortcode": shortcode.shortcode,
                "optedout": opted_out,
                "promotional": shortcode.promotional,
                "footers": footers,
            }
        )

    return checkoptout
