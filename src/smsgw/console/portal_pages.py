"""The partners' portal under /portal/: a partner signs in with its id and portal password and
sees its own balance, statement and messages, never another partner's."""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..domain.apikeys import generate_api_key
from ..domain.callback_urls import BadCallbackUrl, check_callback_url
from ..domain.money import format_units
from ..domain.states import DeliveryState
from ..store import inbound as inbound_store
from ..store import web as web_store
from ..store.campaigns import AlreadySubmitted, claim_form
from ..store.store import now_ms
from .charts import line_chart
from .operator_pages import CHART_DAYS, CHART_POINTS, LEDGER_ROWS, message_page
from .search import MessageQuery
from .web import SECURITY_HEADERS, Web, guarded, seconds_ago

AREA = web_store.PORTAL
REPORT_PAGE = 1000
REPORT_COLUMNS = (
    "messageid",
    "mobile",
    "shortcode",
    "networkid",
    "parts",
    "cost",
    "delivery-status",
    "delivery-description",
    "accepted",
    "final",
    "clientsmsid",
    "message",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([cell(v) for v in values])
    return out.getvalue()


def report_row(web: Web, row: Any) -> tuple[Any, ...]:
    state = DeliveryState(row.state)
    clientsmsid = json.loads(row.clientsmsid) if row.clientsmsid else None
    return (
        row.id,
        row.msisdn,
        row.shortcode,
        row.network_id,
        row.parts,
        format_units(row.cost),
        int(state),
        state.description,
        web.local_time(row.created_at),
        web.local_time(row.done_at),
        clientsmsid,
        row.text,
    )


async def first_post(store: Any, session: Any, fields: dict[str, str], result: str) -> bool:
    """Records the form's one-time id; False when an earlier POST of the same form did. The id
    is recorded before the change it asks for, so a failed change leaves it used: the page
    is loaded again for a new one."""
    form_id = Web.form_id(fields)
    if form_id is None:
        return True
    try:
        await store.write(claim_form, session.area, session.subject, form_id, result, now_ms())
    except AlreadySubmitted:
        return False
    return True


def router(web: Web) -> APIRouter:
    routes = APIRouter()

    def add(path: str, handler: Any, method: str = "GET") -> None:
        routes.add_api_route(path, guarded(web, AREA, handler), methods=[method])

    async def login_form(request: Request) -> Response:
        return web.login_page(request, AREA)

    async def login(request: Request) -> Response:
        return await web.sign_in(request, AREA, "partner")

    async def logout(request: Request) -> Response:
        return await web.sign_out(request, AREA)

    async def start(request: Request) -> Response:
        await web.session(request, AREA)
        return web.redirect("/portal/messages")

    async def messages(request: Request) -> Response:
        session = await web.session(request, AREA)
        store = web.store(request)
        query = MessageQuery.parse(request.query_params.get("q", ""), web.settings.networks)
        rows = await query.run(store, session.subject)
        partner = await store.get_partner(session.subject)
        return web.page("messages.html", area=AREA, session=session, query=query, messages=rows, partner=partner)

    async def message(request: Request) -> Response:
        session = await web.session(request, AREA)
        return await message_page(web, request, session, session.subject)

    async def report(request: Request) -> Response:
        """The partner's delivery reports as CSV: the search's matches, or every message,
        newest first, read a page at a time (through the ledger's charges)."""
        session = await web.session(request, AREA)
        store = web.store(request)
        query = MessageQuery.parse(request.query_params.get("q", ""), web.settings.networks)

        async def rows() -> AsyncIterator[str]:
            yield csv_line(REPORT_COLUMNS)
            if not query.empty:
                for row in await query.run(store, session.subject):
                    yield csv_line(report_row(web, row))
                return
            cursor = None
            while True:
                page, cursor = await store.read(web_store.partner_messages, session.subject, REPORT_PAGE, cursor)
                for row in page:
                    yield csv_line(report_row(web, row))
                if cursor is None:
                    return

        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{session.subject}-delivery-report.csv"'}
        return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)

    async def account_page(session: Any, store: Any, status: int = 200, **context: Any) -> Response:
        partner = await store.get_partner(session.subject)
        forwarding = await store.read(inbound_store.endpoint, session.subject)
        context = {"shown": None, "error": None, **context}
        return web.page("portal_account.html", status, area=AREA, session=session, partner=partner, inbound=forwarding, **context)

    async def account(request: Request) -> Response:
        session = await web.session(request, AREA)
        return await account_page(session, web.store(request), again=request.query_params.get("done") == "again")

    async def rotate_key(request: Request) -> Response:
        """As `smsgw partner rotate-key`: the old key stops working, the new one is shown once.
        The same form posted again (its one-time id) rotates nothing."""
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        store = web.store(request)
        if not await first_post(store, session, fields, "/portal/account?done=again"):
            return web.redirect("/portal/account?done=again")
        key = generate_api_key()
        hasher = await store.api_key_hasher(web.settings.api_key_secret)
        await store.set_api_key_hash(session.subject, hasher.hash(key))
        return await account_page(session, store, shown=("API key", key))

    async def callback(request: Request) -> Response:
        """As `smsgw partner callback`: the URL is checked for form here; whether its host is a
        public address is checked by the sender before each POST, as for the CLI's."""
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        store = web.store(request)
        url = fields.get("url", "").strip()
        if not await first_post(store, session, fields, "/portal/account?done=again"):
            return web.redirect("/portal/account?done=again")
        if not url:
            await store.set_callback(session.subject, None, None)
            return web.redirect("/portal/account")
        try:
            check_callback_url(url)
        except BadCallbackUrl as exc:
            return await account_page(session, store, 400, error=str(exc))
        secret = secrets.token_hex(32)
        await store.set_callback(session.subject, url, secret)
        return await account_page(session, store, shown=("callback signing secret", secret))

    async def inbound(request: Request) -> Response:
        """As `smsgw partner inbound`: a URL (GET or POST, with or without auto-reply), `smpp`
        for deliver_sm to the partner's receiver binds, or empty for none. Signed with the
        callback secret; a private address is refused by the forwarder before each send, as
        for callbacks."""
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        store = web.store(request)
        url = fields.get("url", "").strip()
        method = fields.get("method", "POST").upper()
        auto_reply = fields.get("auto_reply") == "on"
        if not await first_post(store, session, fields, "/portal/account?done=again"):
            return web.redirect("/portal/account?done=again")
        if not url:
            await store.write(inbound_store.set_endpoint, session.subject, None, None, False)
            return web.redirect("/portal/account")
        if url.lower() == "smpp":
            if auto_reply:
                return await account_page(session, store, 400, error="an ESME answers with submit_sm: auto-reply is for URLs")
            await store.write(inbound_store.set_endpoint, session.subject, None, inbound_store.INBOUND_BY_SMPP, False)
            return web.redirect("/portal/account")
        if method not in ("GET", "POST"):
            return await account_page(session, store, 400, error="the method is GET or POST")
        try:
            check_callback_url(url)
        except BadCallbackUrl as exc:
            return await account_page(session, store, 400, error=str(exc))
        await store.write(inbound_store.set_endpoint, session.subject, url, method, auto_reply)
        return web.redirect("/portal/account")

    async def statement(request: Request) -> Response:
        session = await web.session(request, AREA)
        store = web.store(request)
        partner = await store.get_partner(session.subject)
        entries = await store.read(web_store.ledger_page, session.subject, LEDGER_ROWS)
        points = await store.read(web_store.balance_points, session.subject, seconds_ago(CHART_DAYS * 86400), CHART_POINTS)
        return web.page(
            "portal_statement.html",
            area=AREA,
            session=session,
            partner=partner,
            ledger=entries,
            chart=line_chart(points),
            chart_data=[{"at": t, "balance": format_units(v)} for t, v in points],
        )

    add("/portal/login", login_form)
    add("/portal/login", login, "POST")
    add("/portal/logout", logout, "POST")
    add("/portal/", start)
    add("/portal", start)
    add("/portal/messages", messages)
    add("/portal/messages.csv", report)
    add("/portal/messages/{message_id}", message)
    add("/portal/statement", statement)
    add("/portal/account", account)
    add("/portal/account/key", rotate_key, "POST")
    add("/portal/account/callback", callback, "POST")
    add("/portal/account/inbound", inbound, "POST")
    return routes
