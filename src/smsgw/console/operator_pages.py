"""The operators' console under /console/: partners, top-ups, message search, the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from ..domain.apikeys import generate_api_key
from ..domain.identifiers import MAX_SHORTCODE_LENGTH, is_partner_id, is_shortcode
from ..domain.money import format_units, parse_units
from ..domain.passwords import WeakPassword, check_password, hash_password
from ..store import binds
from ..store import web as web_store
from ..store.campaigns import AlreadySubmitted, claim_form, submitted_form
from ..store.errors import AlreadyExists
from ..store.figures import scrape_figures
from ..store.store import now_ms
from .charts import bar_chart, line_chart
from .search import MAX_MESSAGE_ID_DIGITS, MessageQuery
from .web import Refusal, Web, guarded, seconds_ago

AREA = web_store.CONSOLE
LIST_LIMIT = 500
LEDGER_ROWS = 50
AUDIT_ROWS = 200
LEDGER_ROWS = 200
UNMATCHED_ROWS = 200
CHART_DAYS = 30
CHART_POINTS = 2000
# The dashboard's counts stop here (a bounded index range each), whatever the store's size.
DASHBOARD_COUNT_CAP = 100_000
# The dashboard's traffic windows, in whole hours: this hour so far, and with the 23 and the
# 719 hours before it.
TRAFFIC_WINDOW_HOURS = (0, 23, 719)
TRAFFIC_WINDOW_NAMES = ("this hour", "24 hours", "30 days")


def router(web: Web) -> APIRouter:
    routes = APIRouter()

    def add(path: str, handler: Any, method: str = "GET") -> None:
        routes.add_api_route(path, guarded(web, AREA, handler), methods=[method])

    async def login_form(request: Request) -> Response:
        return web.login_page(request, AREA)

    async def login(request: Request) -> Response:
        def audit(conn: Connection, name: str, now: int) -> None:
            web_store.record_audit(conn, name, "sign-in", name, f"from {web.address(request)}", now)

        return await web.sign_in(request, AREA, "username", audit)

    async def logout(request: Request) -> Response:
        return await web.sign_out(request, AREA)

    async def start(request: Request) -> Response:
        await web.session(request, AREA)
        return web.redirect("/console/partners")

    async def dashboard(request: Request) -> Response:
        session = await web.session(request, AREA)
        store = web.store(request)
        now = now_ms()
        figures = await store.read(scrape_figures, now, DASHBOARD_COUNT_CAP)
        by_hour = dict(await store.read(web_store.accepted_per_hour, None, now - 24 * web_store.HOUR_MS, DASHBOARD_COUNT_CAP))
        first = (now // web_store.HOUR_MS - 23) * web_store.HOUR_MS
        hours = [first + i * web_store.HOUR_MS for i in range(24)]
        series = [(web.local_time(hour)[11:16], by_hour.get(hour, 0)) for hour in hours]
        outcomes = await store.read(web_store.outcomes_per_hour, first)
        windows = tuple(now - span * web_store.HOUR_MS for span in TRAFFIC_WINDOW_HOURS)
        traffic = await store.read(web_store.traffic, windows, DASHBOARD_COUNT_CAP)
        return web.page(
            "console_dashboard.html",
            area=AREA,
            session=session,
            figures=figures,
            cap=DASHBOARD_COUNT_CAP,
            bars=bar_chart(series),
            hourly_data=[
                {"hour": label, "accepted": value, **{kind: outcomes.get(hour, {}).get(kind, 0) for kind in ("sent", "delivered", "failed")}}
                for hour, (label, value) in zip(hours, series)
            ],
            traffic=traffic,
            kinds=web_store.TRAFFIC_KINDS,
            window_names=TRAFFIC_WINDOW_NAMES,
        )

    async def partners(request: Request) -> Response:
        session = await web.session(request, AREA)
        rows = await web.store(request).read(web_store.partner_list, LIST_LIMIT)
        return web.page("console_partners.html", area=AREA, session=session, partners=rows, limit=LIST_LIMIT)

    async def partner(request: Request) -> Response:
        session = await web.session(request, AREA)
        partner_id = request.path_params["partner_id"]
        store = web.store(request)
        found = await store.read(web_store.partner_page, partner_id, LEDGER_ROWS)
        if found is None:
            return web.error_page(AREA, 404, f"No partner {partner_id}.", session)
        row, codes, entries, has_password = found
        points = await store.read(web_store.balance_points, partner_id, seconds_ago(CHART_DAYS * 86400), CHART_POINTS)
        return web.page(
            "console_partner.html",
            area=AREA,
            session=session,
            partner=row,
            shortcodes=codes,
            ledger=entries,
            has_password=has_password,
            chart=line_chart(points),
            chart_data=[{"at": t, "balance": format_units(v)} for t, v in points],
            notice=request.query_params.get("done"),
            error=None,
        )

    async def partner_or_404(request: Request, session: Any) -> str:
        partner_id = request.path_params["partner_id"]
        if not is_partner_id(partner_id) or await web.store(request).get_partner(partner_id) is None:
            raise Refusal(web.error_page(AREA, 404, f"No partner {partner_id}.", session))
        return partner_id

    async def topup(request: Request) -> Response:
        """The same store function as `smsgw partner topup`, with the audit entry and the form's
        one-time id in its transaction: the same form posted twice credits once."""
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        partner_id = await partner_or_404(request, session)
        form_id = web.form_id(fields)
        done = f"/console/partners/{partner_id}?done=topup"
        raw = fields.get("units", "").strip()
        reference = fields.get("reference", "").strip() or "console top-up"
        negative = raw.startswith("-")
        try:
            amount = parse_units(raw[1:] if negative else raw)
            if amount == 0:
                raise ValueError("the amount must not be zero")
            if len(reference) > 200:
                raise ValueError("the reference may have at most 200 characters")
            amount = -amount if negative else amount

            def audit(conn: Connection, balance: int) -> None:
                if form_id is not None:
                    claim_form(conn, AREA, session.subject, form_id, done, now_ms())  # rolls the top-up back if posted before
                detail = f"{format_units(amount)} units, reference {reference!r}, balance {format_units(balance)}"
                web_store.record_audit(conn, session.subject, "top-up", partner_id, detail, now_ms())

            await web.store(request).top_up(partner_id, amount, reference, audit=audit)
        except AlreadySubmitted as earlier:
            return web.redirect(earlier.result)
        except ValueError as exc:
            return web.error_page(AREA, 400, f"Top-up refused: {exc}", session)
        return web.redirect(done)

    async def web_form_result(request: Request, session: Any, fields: dict[str, str]) -> str | None:
        """Where an earlier POST of this form (its one-time id) led, None if there was none."""
        form_id = web.form_id(fields)
        if form_id is None:
            return None
        return await web.store(request).read(submitted_form, AREA, session.subject, form_id)

    async def status(request: Request) -> Response:
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        partner_id = await partner_or_404(request, session)
        wanted = fields.get("status")
        if wanted not in ("active", "suspended"):
            return web.error_page(AREA, 400, "The status must be active or suspended.", session)

        def change(conn: Connection) -> None:
            web_store.set_status(conn, partner_id, wanted)
            web_store.record_audit(conn, session.subject, "status", partner_id, wanted, now_ms())

        await web.store(request).write(change)
        return web.redirect(f"/console/partners/{partner_id}?done=status")

    async def portal_password(request: Request) -> Response:
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        partner_id = await partner_or_404(request, session)
        password = fields.get("password", "")
        try:
            check_password(password)
        except WeakPassword as exc:
            return web.error_page(AREA, 400, f"Password refused: {exc}", session)
        hashed = hash_password(password)

        def set_password(conn: Connection) -> None:
            now = now_ms()
            web_store.set_portal_password(conn, partner_id, hashed, now)
            web_store.record_audit(conn, session.subject, "portal-password", partner_id, "set", now)

        await web.store(request).write(set_password)
        return web.redirect(f"/console/partners/{partner_id}?done=password")

    async def create_partner(request: Request) -> Response:
        """As `smsgw partner create`: the API key is shown on this page only, once. The same
        form posted again creates nothing and leads to the partner's page."""
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        earlier = await web_form_result(request, session, fields)
        if earlier is not None:
            return web.redirect(earlier)
        partner_id = fields.get("partner_id", "").strip()
        name = fields.get("name", "").strip() or partner_id
        try:
            if not is_partner_id(partner_id):
                raise ValueError("a partner id has 1 to 64 ASCII letters, digits, '-', '_' or '.'")
            if len(name) > 200:
                raise ValueError("the name may have at most 200 characters")
            credits = parse_units(fields.get("credits", "").strip() or "0")
            store = web.store(request)
            key = generate_api_key()
            hasher = await store.api_key_hasher(web.settings.api_key_secret)
            await store.create_partner(partner_id, name, hasher.hash(key), credits)
        except (ValueError, AlreadyExists) as exc:
            earlier = await web_form_result(request, session, fields)  # the same form, posted at once twice
            if earlier is not None:
                return web.redirect(earlier)
            return web.error_page(AREA, 400, f"Partner not created: {exc}", session)

        def audit(conn: Connection) -> None:
            now = now_ms()
            form_id = web.form_id(fields)
            if form_id is not None:
                claim_form(conn, AREA, session.subject, form_id, f"/console/partners/{partner_id}?done=created", now)
            web_store.record_audit(conn, session.subject, "create-partner", partner_id, f"name {name!r}, {format_units(credits)} units", now)

        await store.write(audit)
        return web.page("console_partner_created.html", area=AREA, session=session, partner_id=partner_id, api_key=key)

    async def add_shortcode(request: Request) -> Response:
        """As `smsgw shortcode add`; the same form posted again adds nothing."""
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        partner_id = await partner_or_404(request, session)
        earlier = await web_form_result(request, session, fields)
        if earlier is not None:
            return web.redirect(earlier)
        shortcode = fields.get("shortcode", "").strip()
        networks_text = fields.get("networks", "").strip()
        try:
            if not is_shortcode(shortcode):
                raise ValueError(f"a shortcode has 1 to {MAX_SHORTCODE_LENGTH} printable characters")
            networks = web.settings.networks.parse_ids(networks_text) if networks_text else None
            await web.store(request).add_shortcode(shortcode, partner_id, networks)
        except (ValueError, AlreadyExists) as exc:
            earlier = await web_form_result(request, session, fields)
            if earlier is not None:
                return web.redirect(earlier)
            return web.error_page(AREA, 400, f"Shortcode not added: {exc}", session)
        where = "every network" if networks is None else "networks " + ",".join(map(str, sorted(networks)))
        done = f"/console/partners/{partner_id}?done=shortcode"

        def audit(conn: Connection) -> None:
            now = now_ms()
            form_id = web.form_id(fields)
            if form_id is not None:
                claim_form(conn, AREA, session.subject, form_id, done, now)
            web_store.record_audit(conn, session.subject, "add-shortcode", partner_id, f"{shortcode} on {where}", now)

        await web.store(request).write(audit)
        return web.redirect(done)

    async def messages(request: Request) -> Response:
        session = await web.session(request, AREA)
        query = MessageQuery.parse(request.query_params.get("q", ""), web.settings.networks)
        rows = await query.run(web.store(request), None)
        return web.page("messages.html", area=AREA, session=session, query=query, messages=rows)

    async def message(request: Request) -> Response:
        session = await web.session(request, AREA)
        return await message_page(web, request, session, None)

    async def routes_page(request: Request) -> Response:
        session = await web.session(request, AREA)
        store = web.store(request)
        reports = await store.read(binds.route_report_rows)
        leases = await store.read(binds.lease_holders)
        rows = route_rows(reports, leases, web.settings, now_ms())
        return web.page("console_routes.html", area=AREA, session=session, routes=rows)

    async def ledger(request: Request) -> Response:
        session = await web.session(request, AREA)
        raw = request.query_params.get("before", "")
        before = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= MAX_MESSAGE_ID_DIGITS else None
        rows = await web.store(request).read(web_store.ledger_entries, LEDGER_ROWS, before)
        older = rows[-1].id if len(rows) == LEDGER_ROWS else None
        return web.page("console_ledger.html", area=AREA, session=session, ledger=rows, older=older)

    async def unmatched(request: Request) -> Response:
        session = await web.session(request, AREA)
        rows = await web.store(request).read(web_store.unmatched_receipts_page, UNMATCHED_ROWS)
        return web.page("console_unmatched.html", area=AREA, session=session, receipts=rows, limit=UNMATCHED_ROWS)

    async def audit_log(request: Request) -> Response:
        session = await web.session(request, AREA)
        rows = await web.store(request).read(web_store.audit_entries, AUDIT_ROWS)
        return web.page("console_audit.html", area=AREA, session=session, entries=rows, limit=AUDIT_ROWS)

    add("/console/login", login_form)
    add("/console/login", login, "POST")
    add("/console/logout", logout, "POST")
    add("/console/", start)
    add("/console", start)
    add("/console/partners", partners)
    add("/console/dashboard", dashboard)
    add("/console/partners", create_partner, "POST")
    add("/console/partners/{partner_id}", partner)
    add("/console/partners/{partner_id}/shortcodes", add_shortcode, "POST")
    add("/console/partners/{partner_id}/topup", topup, "POST")
    add("/console/partners/{partner_id}/status", status, "POST")
    add("/console/partners/{partner_id}/portal-password", portal_password, "POST")
    add("/console/messages", messages)
    add("/console/messages/{message_id}", message)
    add("/console/routes", routes_page)
    add("/console/ledger", ledger)
    add("/console/unmatched", unmatched)
    add("/console/audit", audit_log)
    return routes


async def message_page(web: Web, request: Request, session: Any, partner_id: str | None) -> Response:
    """One message with its history; `partner_id` limits it to that partner's own."""
    raw = request.path_params["message_id"]
    found = None
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        found = await web.store(request).read(web_store.message_history, partner_id, int(raw))
    if found is None:
        return web.error_page(session.area, 404, "No such message.", session)
    row, parts, posts = found
    return web.page("message.html", area=session.area, session=session, message=row, parts=parts, callbacks=posts)


@dataclass(frozen=True)
class RouteRow:
    name: str
    kind: str
    networks: str
    priority: int
    weight: int
    state: str  # up, down, probing, or "unknown" when its holder has stopped reporting
    bound: bool
    holder: str | None  # the dispatcher holding its bind lease now
    share: float | None  # of the submits the carriers took since the reports before, all routes
    accepted: int
    failovers: int
    since: int
    reported_at: int


def route_rows(reports: list[Any], leases: dict[str, tuple[str, int]], settings: Settings, now: int) -> list[RouteRow]:
    """The routes page: each reported route with its holder and share of recent traffic. A
    report older than a bind lease is from a dispatcher that stopped without saying so."""
    stale_after = settings.bind_lease_seconds * 1000
    fresh = [r for r in reports if now - r.reported_at <= stale_after]
    recent_total = sum(r.accepted_recent for r in fresh)
    rows = []
    for r in reports:
        holder, lease_until = leases.get(r.route, ("", 0))
        current = now - r.reported_at <= stale_after
        names = (
            [settings.networks.networks[int(n)].name if int(n) in settings.networks.networks else n for n in r.networks.split(",")]
            if r.networks
            else []
        )
        rows.append(
            RouteRow(
                name=r.route,
                kind=r.kind,
                networks=", ".join(names) if names else "every network",
                priority=r.priority,
                weight=r.weight,
                # A route its holder left down (a clean stop) stays down; one it said was up
                # is unknown once its holder stops reporting.
                state=r.state if current or r.state == "down" else "unknown",
                bound=bool(r.bound) and current,
                holder=holder if holder and lease_until >= now else None,
                share=(r.accepted_recent / recent_total) if current and recent_total else None,
                accepted=r.accepted,
                failovers=r.failovers,
                since=r.since,
                reported_at=r.reported_at,
            )
        )
    return rows
