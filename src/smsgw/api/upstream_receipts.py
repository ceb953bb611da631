"""Delivery reports an upstream provider pushes to us (`POST /upstream/ROUTE/dlr`): the
callbacks of its partner account that an upstream route (`sendbulk+https://...&secret=S`)
uses. Authenticated by the route's secret, either in the callback URL (`?secret=S`) or as
that account's callback secret there, whose `X-Smsgw-Signature-V2` over
`TIMESTAMP + "." + body` is checked with a timestamp no older than `MAX_REPORT_AGE_SECONDS`.
A report is recorded exactly as a polled one (connectors/upstream.py): the upstream's
messageid is the route's id of the message, and the first final state of a message counts.
A report for an id the store does not know yet (its submit is being committed) is answered
503, so that the upstream sends it again."""

from __future__ import annotations

import hmac
import logging
import time

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from ..connectors.base import smsc_id_keys
from ..connectors.upstream import receipt_of, state_of_report
from ..dispatch.webhooks import SIGNATURE_V2_HEADER, TIMESTAMP_HEADER, signature_v2
from ..store import upstream
from ..store.errors import StoreUnavailable
from ..store.receipts import IncomingReceipt
from ..store.store import now_ms
from .responses import status_answer

log = logging.getLogger(__name__)

MAX_REPORT_AGE_SECONDS = 300
MAX_REPORT_BYTES = 64 * 1024


def authentic(secret: str, given_secret: str | None, timestamp: str | None, given_signature: str | None, body: bytes, now_seconds: float) -> bool:
    """Whether a pushed report comes from the holder of the route's secret; compared in
    constant time, and a signature only within MAX_REPORT_AGE_SECONDS of its timestamp."""
    if given_secret is not None:
        return hmac.compare_digest(given_secret.encode("utf-8", "surrogatepass"), secret.encode("utf-8"))
    if not timestamp or not given_signature or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(now_seconds - int(timestamp)) > MAX_REPORT_AGE_SECONDS:
        return False
    expected = signature_v2(secret, int(timestamp), body)
    return hmac.compare_digest(given_signature.strip().lower().encode("ascii", "replace"), expected.encode("ascii"))


def add_upstream_receipt_routes(app: FastAPI, settings: Settings, secrets: dict[str, str]) -> None:
    async def upstream_dlr(request: Request) -> Response:
        route = request.path_params["route"]
        secret = secrets.get(route)
        if secret is None:
            return status_answer({"status": "no upstream route of that name takes pushed reports"}, status_code=404)
        body = await request.body()
        if len(body) > MAX_REPORT_BYTES:
            return status_answer({"status": "report too large"}, status_code=413)
        given = request.headers
        if not authentic(secret, request.query_params.get("secret"), given.get(TIMESTAMP_HEADER), given.get(SIGNATURE_V2_HEADER), body, time.time()):
            return status_answer({"status": "not authenticated"}, status_code=401)
        try:
            report = orjson.loads(body)
        except orjson.JSONDecodeError:
            return status_answer({"status": "body must be a JSON delivery report"}, status_code=400)
        final = state_of_report(report)
        if final is None:
            return status_answer({"status": "ignored: no final state"})
        upstream_id, state = final
        receipt = receipt_of(upstream_id, state, f"pushed {report.get('description')}")
        now = now_ms()
        incoming = IncomingReceipt(route, upstream_id, smsc_id_keys(upstream_id), int(state), receipt.stat, None, now)
        try:
            outcome = await request.app.state.store.write(upstream.record_pushed_receipt, incoming, now, settings.timezone)
        except StoreUnavailable:
            # Not recorded: the upstream sends it again (its callbacks are retried until a 2xx).
            return status_answer({"status": "store unavailable"}, status_code=503)
        if outcome is None:
            return status_answer({"status": "no message of this route has that messageid (yet)"}, status_code=503, headers={"Retry-After": "5"})
        return status_answer({"status": "recorded", "matched": outcome.matched})

    app.add_api_route(
        "/upstream/{route}/dlr", upstream_dlr, methods=["POST"], summary="Delivery report pushed by an upstream provider", include_in_schema=False
    )
