"""The HTTP application: partner API under /api/services/, admin API, health, docs."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from .. import metrics
from ..config import Settings
from ..console import add_console_routes
from ..domain.codes import Code
from ..domain.money import format_units, parse_units
from ..domain.reports import duration, local_time
from ..domain.states import PRIORITY_BULK, PRIORITY_OTP, DeliveryState
from ..logs import configure_logging
from ..store.errors import NotFound, StoreUnavailable
from ..store.store import Store, open_store
from . import reseller, schemas
from .acceptance import Acceptance, idempotency_key
from .bodies import BadRequest, InexactNumber, exact_numbers, mobile_numbers, parameters, parse_json, read_body
from .controls import RequestScope
from .inbox import getinbox_handler
from .operations import add_operations_routes
from .optouts import checkoptout_handler
from .responses import Responder, status_answer
from .upstream_receipts import add_upstream_receipt_routes

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
# Runs delivery for the app's lifetime; what it yields has wake(), called after each accept.
Delivery = Callable[[Store], contextlib.AbstractAsyncContextManager[Any]]
Alongside = Callable[[Acceptance], contextlib.AbstractAsyncContextManager[Any]]


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    routed_networks: frozenset[int] | None = None,
    delivery: Delivery | None = None,
    alongside: Alongside | None = None,
    upstream_secrets: dict[str, str] | None = None,
) -> FastAPI:
    """The ASGI app. Without `store`, one is opened from settings when the app starts.
    With `delivery`, the dispatcher runs in this process too (the embedded default).
    `alongside` runs for the app's lifetime with its acceptance service (the partner SMPP
    server), after the dispatcher starts and before it stops. `upstream_secrets` (route name ->
    secret) are the upstream routes whose delivery reports may be pushed to /upstream/NAME/dlr."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        active = store or open_store(settings)
        app.state.store = active
        app.state.acceptance = Acceptance(settings, active, routed_networks, app.state.responder)
        app.state.dispatcher = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                if delivery is not None:
                    dispatcher = await stack.enter_async_context(delivery(active))
                    app.state.dispatcher = dispatcher
                    app.state.acceptance.on_accepted = dispatcher.wake
                if alongside is not None:
                    app.state.alongside = await stack.enter_async_context(alongside(app.state.acceptance))
                yield
        finally:
            app.state.acceptance.scrypt_checks.close()
            if own_store:
                await active.close()

    app = FastAPI(
        title="smsgw partner API",
        version="1",
        description=(
            "Bulk SMS gateway. Protocol outcomes are answered with HTTP 200 and a `response-code` in the body; see the code table in docs/api.md."
        ),
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(metrics.RequestMetrics)
    add_operations_routes(app, settings)
    add_console_routes(app, settings)
    add_upstream_receipt_routes(app, settings, upstream_secrets or {})
    responder = app.state.responder = Responder.of(settings)
    limit = settings.max_body_bytes

    def guarded(handler: Handler) -> Handler:
        """Turns every failure of a handler into the contract's bare error object."""

        async def run(request: Request) -> Response:
            try:
                try:
                    return await handler(request)
                except InexactNumber:
                    with exact_numbers():  # rare: once more, keeping the digits of a huge number
                        return await handler(request)
            except BadRequest as exc:
                return responder.bare(exc.code, exc.detail, exc.http_status, exc.retry_after)
            except StoreUnavailable:
                return responder.bare(Code.TRY_AGAIN_LATER, None)
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                return responder.bare(Code.REQUEST_SYSTEM_ERROR, None)

        return run

    def acceptance(request: Request) -> Acceptance:
        return request.app.state.acceptance

    def route(path: str, methods: list[str], handler: Handler, summary: str, model: type, forms: bool, docs: dict[Any, Any]) -> None:
        endpoint = guarded(handler)
        endpoint.__doc__ = handler.__doc__
        name = path.rsplit("/", 1)[-1]
        for method in methods:
            extra = schemas.request_body(model, forms) if method == "POST" else schemas.query_parameters(model)
            for with_slash in (False, True):
                app.add_api_route(
                    path + ("/" if with_slash else ""),
                    endpoint,
                    methods=[method],
                    summary=summary,
                    operation_id=f"{name}_{method.lower()}",
                    include_in_schema=not with_slash,
                    openapi_extra=extra,
                    responses=docs,
                    response_class=Response,
                )

    # -- partner API ----------------------------------------------------------------------------

    async def sendbulk(request: Request) -> Response:
        """Up to 1000 messages, each with its own number and text. Credentials and shortcode
        come from the first entry. One result per entry, in input order."""
        key = idempotency_key(request.headers.get("idempotency-key"))
        body = await read_body(request, limit)
        doc = parse_json(body)
        if not isinstance(doc, dict):
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "body must be a JSON object")
        smslist = doc.get("smslist")
        if not isinstance(smslist, list):
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "smslist missing or not a list")
        if len(smslist) > settings.max_bulk_messages:
            raise BadRequest(Code.TOO_MANY_MESSAGES, f"{len(smslist)} entries, the limit is {settings.max_bulk_messages}")
        if not smslist:
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "smslist is empty")
        _check_count(doc.get("count"), len(smslist))
        first = smslist[0]
        if not isinstance(first, dict):
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "the first smslist entry must be an object with the credentials")
        gateway = acceptance(request)
        partner = await gateway.authenticate(first)
        result = await gateway.submit(
            partner,
            first.get("shortcode"),
            smslist,
            priority=PRIORITY_BULK,
            mobile_as_number=False,
            idempotency=(key, hashlib.sha256(body).hexdigest()) if key else None,
            kind="sendbulk",
        )
        return answer_bytes(result)

    async def send_to_numbers(request: Request, priority: int, kind: str) -> Response:
        key = idempotency_key(request.headers.get("idempotency-key"))
        fields = await parameters(request, limit)
        gateway = acceptance(request)
        partner = await gateway.authenticate(fields)
        numbers = mobile_numbers(fields.get("mobile"), settings.max_bulk_messages)
        template = {"message": fields.get("message"), "timeToSend": fields.get("timeToSend")}
        if "clientsmsid" in fields:
            template["clientsmsid"] = fields["clientsmsid"]
        entries = [dict(template, mobile=number) for number in numbers]
        # A POST body was read (within the size limit) by `parameters`; a GET's is ignored.
        body = (await request.body()) if request.method == "POST" else b""
        fingerprint = hashlib.sha256(request.method.encode() + b" " + request.url.query.encode() + b" " + body).hexdigest()
        result = await gateway.submit(
            partner,
            fields.get("shortcode"),
            entries,
            priority=priority,
            mobile_as_number=True,
            idempotency=(key, fingerprint) if key else None,
            kind=kind,
        )
        return answer_bytes(result)

    async def sendsms(request: Request) -> Response:
        """One message to one number, or to up to 1000 comma-separated numbers."""
        return await send_to_numbers(request, PRIORITY_BULK, "sendsms")

    async def sendotp(request: Request) -> Response:
        """As sendsms, but the messages go ahead of bulk traffic in the queue."""
        return await send_to_numbers(request, PRIORITY_OTP, "sendotp")

    async def getbalance(request: Request) -> Response:
        """The partner's credit balance."""
        fields = await parameters(request, limit)
        partner = await acceptance(request).authenticate(fields)
        return responder.answer(
            {"response-code": 200, "response-description": "Success", "credit": format_units(partner.balance), "partner-id": partner.id}
        )

    async def getdlr(request: Request) -> Response:
        """The delivery status of one of the partner's messages."""
        fields = await parameters(request, limit)
        gateway = acceptance(request)
        partner = await gateway.authenticate(fields)
        message_id = reseller.message_id_field(fields)
        message = await gateway.store.get_message(partner.id, message_id) if message_id is not None else None
        if message is None:
            raise BadRequest(Code.NO_DELIVERY_REPORT)
        state = DeliveryState(message.state)
        if state.is_final and message.done_at is not None:
            reached = message.done_at
        elif state is DeliveryState.SENT_TO_NETWORK and message.submitted_at is not None:
            reached = message.submitted_at
        else:
            reached = message.created_at
        return responder.answer(
            {
                "response-code": 200,
                "response-description": "Success",
                "message-id": str(message.id),
                "delivery-status": int(state),
                "delivery-description": state.description,
                "delivery-tat": duration(reached - message.created_at),
                "delivery-networkid": message.network_id,
                "delivery-time": local_time(reached, settings.timezone),
            }
        )

    def answer_bytes(body: bytes) -> Response:
        return Response(body, media_type="application/json")

    both = ["GET", "POST"]
    route(
        "/api/services/sendbulk",
        ["POST"],
        sendbulk,
        "Send up to 1000 messages",
        schemas.SendBulkRequest,
        False,
        schemas.answer_doc(schemas.SendResponse, "One result per entry."),
    )
    route(
        "/api/services/sendsms",
        both,
        sendsms,
        "Send one message to one or more numbers",
        schemas.SendSmsRequest,
        True,
        schemas.answer_doc(schemas.SendResponse, "One result per number."),
    )
    route(
        "/api/services/sendotp",
        both,
        sendotp,
        "Send a one-time password ahead of bulk traffic",
        schemas.SendSmsRequest,
        True,
        schemas.answer_doc(schemas.SendResponse, "One result per number."),
    )
    route(
        "/api/services/getbalance",
        both,
        getbalance,
        "Credit balance",
        schemas.CredentialsRequest,
        True,
        schemas.answer_doc(schemas.BalanceResponse, "The balance."),
    )
    route(
        "/api/services/getdlr",
        both,
        getdlr,
        "Delivery report of one message",
        schemas.DlrRequest,
        True,
        schemas.answer_doc(schemas.DlrResponse, "The report."),
    )
    for path, handler, summary, model, docs in reseller.routes(settings, responder):
        route(path, ["POST"], handler, summary, model, True, docs)
    app.add_middleware(RequestScope)
    route(
        "/api/services/getinbox",
        both,
        getinbox_handler(settings, acceptance),
        "Inbound messages, paged by id",
        schemas.InboxRequest,
        True,
        schemas.answer_doc(schemas.InboxResponse, "Oldest first."),
    )
    route(
        "/api/services/checkoptout",
        both,
        checkoptout_handler(settings, acceptance),
        "Which numbers are on your opt-out list",
        schemas.OptOutCheckRequest,
        True,
        schemas.answer_doc(schemas.OptOutCheckResponse, "The listed numbers among those asked."),
    )

    # -- admin API (operator) ---------------------------------------------------------------------

    def admin_guard(request: Request) -> None:
        token = settings.admin_token
        presented = request.headers.get("authorization", "")
        if token is None:
            raise BadRequest(Code.INVALID_CREDENTIALS, "the admin API is off (set SMSGW_ADMIN_TOKEN)")
        expected = f"Bearer {token}".encode()
        if not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected):
            raise BadRequest(Code.INVALID_CREDENTIALS)

    async def admin_partner(request: Request) -> Response:
        """A partner's status, balance and shortcodes (operator token required)."""
        admin_guard(request)
        store: Store = request.app.state.store
        partner_id = request.path_params["partner_id"]
        partner = await store.get_partner(partner_id)
        if partner is None:
            raise BadRequest(Code.DETAILS_NOT_FOUND, f"no partner {partner_id}")
        codes = await store.list_shortcodes(partner_id)
        return responder.answer(
            {
                "response-code": 200,
                "response-description": "Success",
                "partner-id": partner.id,
                "name": partner.name,
                "status": partner.status,
                "credit": format_units(partner.balance),
                "shortcodes": [c.shortcode for c in codes],
            }
        )

    async def admin_topup(request: Request) -> Response:
        """Adds credit to a partner, through the ledger (operator token required)."""
        admin_guard(request)
        store: Store = request.app.state.store
        partner_id = request.path_params["partner_id"]
        doc = parse_json(await read_body(request, limit))
        if not isinstance(doc, dict):
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "body must be a JSON object")
        units = doc.get("units")
        if isinstance(units, bool) or not isinstance(units, (str, int)):
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "units must be a number of units, e.g. '100' or '12.50'")
        try:
            amount = parse_units(str(units))
        except ValueError as exc:
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, str(exc)) from None
        if amount <= 0:
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "units must be positive")
        reference = doc.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "reference must be a string")
        if reference is not None and not 1 <= len(reference) <= 200:
            raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "reference must have 1 to 200 characters")
        try:
            # With a reference (an invoice number, say) a retried call adds the credit once.
            balance = await store.top_up(partner_id, amount, reference or "admin api top-up", once=reference is not None)
        except NotFound:
            raise BadRequest(Code.DETAILS_NOT_FOUND, f"no partner {partner_id}") from None
        return responder.answer({"response-code": 200, "response-description": "Success", "partner-id": partner_id, "credit": format_units(balance)})

    app.add_api_route(
        "/api/admin/partners/{partner_id}",
        guarded(admin_partner),
        methods=["GET"],
        summary="Show a partner",
        response_class=Response,
        responses=schemas.admin_doc(schemas.PartnerView),
    )
    app.add_api_route(
        "/api/admin/partners/{partner_id}/topup",
        guarded(admin_topup),
        methods=["POST"],
        summary="Top up a partner",
        response_class=Response,
        responses=schemas.admin_doc(schemas.TopUpResponse),
        openapi_extra=schemas.request_body(schemas.TopUpRequest, forms=False),
    )

    async def health(request: Request) -> Response:
        """200 when the store answers, 503 when it does not."""
        try:
            await request.app.state.store.count_partners()
        except StoreUnavailable:
            return status_answer({"status": "store unavailable"}, status_code=503)
        except Exception:
            log.exception("health check failed")
            return status_answer({"status": "store not usable"}, status_code=503)
        return status_answer({"status": "ok"})

    app.add_api_route(
        "/health", health, methods=["GET"], summary="Store health", tags=["operations"], response_class=Response, responses=schemas.health_doc()
    )

    # -- HTTP-level errors carry a code too --------------------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            refused = responder.bare(Code.UNSUPPORTED_REQUEST_TYPE, f"method {request.method} not allowed here", 405)
            refused.headers["Allow"] = ", ".join(allowed_methods(request))
            return refused
        if exc.status_code == 404:
            return responder.bare(Code.UNSUPPORTED_REQUEST_TYPE, f"no such path {request.url.path}", 404)
        return responder.bare(Code.UNSUPPORTED_REQUEST_TYPE, str(exc.detail), exc.status_code)

    def allowed_methods(request: Request) -> list[str]:
        """Every method some route of this path takes (each route here has one method)."""
        methods: set[str] = set()
        for candidate in request.app.router.routes:
            match, _ = candidate.matches(request.scope)
            if match is not Match.NONE:
                methods.update(getattr(candidate, "methods", None) or ())
        return sorted(methods)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas.finish_document(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


ROUTED_NETWORKS_ENV = "SMSGW_ROUTED_NETWORKS"
WORKER_LOG_LEVEL_ENV = "SMSGW_WORKER_LOG_LEVEL"
UPSTREAM_SECRETS_ENV = "SMSGW_UPSTREAM_SECRETS"  # JSON route name -> secret, set by `smsgw serve` for its workers


def app_from_env() -> FastAPI:
    """The app for `uvicorn --factory` (several API worker processes): settings from the
    environment, routed networks from SMSGW_ROUTED_NETWORKS (set by `smsgw serve`)."""
    import json
    import os

    from ..config import ConfigError

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    configure_logging(os.environ.get(WORKER_LOG_LEVEL_ENV) or "info", settings.log_format)
    routed = os.environ.get(ROUTED_NETWORKS_ENV)
    networks = frozenset(int(n) for n in routed.split(",") if n) if routed else None
    upstream_secrets = json.loads(os.environ.get(UPSTREAM_SECRETS_ENV) or "{}")
    return create_app(settings, routed_networks=networks, upstream_secrets=upstream_secrets)


def _check_count(count: Any, length: int) -> None:
    if count is None:
        return
    if isinstance(count, bool):
        raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "count must be a number")
    if isinstance(count, str):
        text = count.strip()
        if not (text.isascii() and text.isdigit()):
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "count must be a number")
        count = int(text)
    if not isinstance(count, (int, float)) or count != length:
        raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, f"count {count} does not match the {length} entries of smslist")
