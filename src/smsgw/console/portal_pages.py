"""The partners' portal under /portal/: a partner signs in with its id and portal password and
sees its own balance, statement and messages, never another partner's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..domain.money import format_units
from ..store import web as web_store
from .charts import line_chart
from .operator_pages import CHART_DAYS, CHART_POINTS, LEDGER_ROWS, message_page
from .search import MessageQuery
from .web import Web, guarded, seconds_ago

AREA = web_store.PORTAL


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
    add("/portal/messages/{message_id}", message)
    add("/portal/statement", statement)
    return routes
