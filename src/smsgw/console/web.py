"""What the console's and the portal's pages share: templates, sessions in cookies, CSRF
tokens, login throttling, security headers.

A session is a random token in an HttpOnly, SameSite=Lax cookie scoped to its area's path
(`Secure` when the request came over TLS); the store keeps only the token's SHA-256 with the
subject, the session's CSRF token and its expiry, so signing out or removing an account ends
the session on every API process at once. Every form carries the CSRF token; the sign-in forms,
which have no session yet, carry one that must match a cookie of their own (double submit).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib.resources
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..api.bodies import read_body
from ..api.controls import client_address
from ..api.guard import FailureThrottle
from ..config import Settings
from ..domain.identifiers import parse_ip_address
from ..domain.money import format_units
from ..domain.passwords import verify_password
from ..domain.states import DeliveryState
from ..service.errors import BadRequest
from ..store import web as web_store
from ..store.errors import StoreUnavailable
from ..store.store import Store, now_ms

LOGIN_COOKIE = "smsgw_login"
MAX_FORM_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Session:
    area: str
    subject: str  # the operator's name, or the partner's id
    csrf_token: str
    token_hash: str


class Refusal(Exception):
    """Ends a request with this response (a redirect to sign in, a refused form)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Web:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("smsgw.console", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self.templates.filters["units"] = format_units
        self.templates.filters["when"] = self.local_time
        self.templates.filters["state"] = lambda value: f"{DeliveryState(value).description} ({int(value)})"
        # Each rendering of a form that moves money or creates something gets its own id (form_submissions).
        self.templates.globals["new_form_id"] = lambda: secrets.token_urlsafe(18)
        # Separate counts for operators and partners: a partner id and an operator name may
        # be the same word.
        self.throttles = {web_store.CONSOLE: FailureThrottle(), web_store.PORTAL: FailureThrottle()}

    def local_time(self, ms: int | None) -> str:
        if ms is None:
            return ""
        return datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.settings.timezone).strftime("%Y-%m-%d %H:%M:%S")

    # -- responses --------------------------------------------------------------------------

    def page(self, name: str, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})})

    def error_page(self, area: str, status_code: int, message: str, session: Session | None = None, **headers: str) -> HTMLResponse:
        return self.page("error.html", status_code, headers, area=area, session=session, message=message, status=status_code)

    @staticmethod
    def redirect(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)

    def static_router(self) -> APIRouter:
        files = importlib.resources.files("smsgw.console") / "static"
        assets = {item.name: item.read_bytes() for item in files.iterdir() if item.is_file() and "." + item.name.rsplit(".", 1)[-1] in STATIC_TYPES}
        router = APIRouter()

        @router.get("/console/static/{name}")
        async def static(name: str) -> Response:
            body = assets.get(name)
            if body is None:
                return Response(status_code=404)
            kind = STATIC_TYPES["." + name.rsplit(".", 1)[-1]]
            return Response(body, media_type=kind, headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})

        return router

    # -- requests -----------------------------------------------------------------------------

    @staticmethod
    def store(request: Request) -> Store:
        return request.app.state.store

    def address(self, request: Request) -> str:
        return str(client_address(dict(request.scope), self.settings.trusted_proxies))

    def over_tls(self, request: Request) -> bool:
        """Behind a trusted proxy that terminated TLS, its X-Forwarded-Proto says so."""
        if request.url.scheme == "https":
            return True
        peer = parse_ip_address((request.scope.get("client") or ("",))[0])
        trusted = peer is not None and any(peer.version == network.version and peer in network for network in self.settings.trusted_proxies)
        return trusted and request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower() == "https"

    async def form(self, request: Request) -> dict[str, str]:
        try:
            await read_body(request, MAX_FORM_BYTES)  # also when chunked, without a Content-Length
        except BadRequest:
            raise Refusal(self.error_page("console", 413, "The form is too large.")) from None
        data = await request.form(max_files=0, max_fields=50)
        return {key: value for key, value in data.items() if isinstance(value, str)}

    async def upload_form(self, request: Request, session: Session, max_file_bytes: int) -> tuple[dict[str, str], str, bytes]:
        """A posted multipart form with one file, if it carries the session's CSRF token: its
        text fields, the file's name and its bytes. Refusal (413) past `max_file_bytes`,
        counted before the body is parsed."""
        try:
            await read_body(request, max_file_bytes + MAX_FORM_BYTES)
        except BadRequest:
            raise Refusal(
                self.error_page(session.area, 413, f"The file is too large: the limit is {max_file_bytes // 1_000_000} MB.", session)
            ) from None
        try:
            data = await request.form(max_files=1, max_fields=50)
        except Exception:  # a body that is not multipart/form-data, or a broken one
            raise Refusal(self.error_page(session.area, 400, "The upload could not be read: send it from the form.", session)) from None
        fields = {key: value for key, value in data.items() if isinstance(value, str)}
        if not hmac.compare_digest(fields.get("csrf", "").encode(), session.csrf_token.encode()):
            raise Refusal(self.error_page(session.area, 403, "The form was refused: it did not come from this page (CSRF token missing or wrong)."))
        upload = next((value for value in data.values() if not isinstance(value, str)), None)
        if upload is None:
            raise Refusal(self.error_page(session.area, 400, "Choose a file to upload.", session))
        body = await upload.read()
        if len(body) > max_file_bytes:
            raise Refusal(self.error_page(session.area, 413, f"The file is too large: the limit is {max_file_bytes // 1_000_000} MB.", session))
        return fields, (upload.filename or "upload")[:200], body

    @staticmethod
    def form_id(fields: dict[str, str]) -> str | None:
        """The form's one-time id (new_form_id), None when it has none (a script's POST)."""
        value = fields.get("form_id", "")
        return value if value and len(value) <= 64 and value.isascii() and value.isprintable() else None

    @staticmethod
    def cookie_name(area: str) -> str:
        return f"smsgw_{area}_session"

    async def session(self, request: Request, area: str) -> Session:
        """The signed-in session of `area`, or Refusal with a redirect to its sign-in page."""
        token = request.cookies.get(self.cookie_name(area))
        if token:
            hashed = token_hash(token)
            found = await self.store(request).read(web_store.find_session, hashed, area, now_ms())
            if found is not None:
                return Session(area, found.subject, found.csrf_token, hashed)
        raise Refusal(self.redirect(f"/{area}/login"))

    async def form_of(self, request: Request, session: Session) -> dict[str, str]:
        """The posted form, if it carries the session's CSRF token; else Refusal (403)."""
        fields = await self.form(request)
        if not hmac.compare_digest(fields.get("csrf", "").encode(), session.csrf_token.encode()):
            raise Refusal(self.error_page(session.area, 403, "The form was refused: it did not come from this page (CSRF token missing or wrong)."))
        return fields

    # -- signing in and out ---------------------------------------------------------------------

    def login_page(self, request: Request, area: str, status_code: int = 200, error: str | None = None, **headers: str) -> HTMLResponse:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = self.page(f"{area}_login.html", status_code, headers, area=area, session=None, csrf=token, error=error)
        response.set_cookie(LOGIN_COOKIE, token, path=f"/{area}", httponly=True, samesite="strict", secure=self.over_tls(request))
        return response

    async def sign_in(self, request: Request, area: str, subject_field: str, audit: Callable[[Any, str, int], None] | None = None) -> Response:
        """Checks a sign-in form; opens a session and redirects to the area's start page."""
        fields = await self.form(request)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(fields.get("csrf", "").encode(), expected.encode()):
            return self.login_page(request, area, 403, "The sign-in form had expired; please try again.")
        subject = fields.get(subject_field, "").strip()
        password = fields.get("password", "")
        throttle = self.throttles[area]
        address = self.address(request)
        wait = throttle.waiting(subject, address)
        if wait:
            return self.login_page(request, area, 429, f"Too many failed sign-ins; try again in {wait} s.", **{"Retry-After": str(wait)})
        store = self.store(request)
        try:
            stored = await store.read(web_store.password_hash, area, subject) if subject and len(subject) <= 64 else None
        except StoreUnavailable:
            return self.login_page(request, area, 503, "The store is unavailable; try again shortly.")
        if not await asyncio.to_thread(verify_password, password[:1024], stored):
            refused = throttle.refuse(subject, address)
            return self.login_page(request, area, 401 if refused.http_status == 200 else refused.http_status, "Wrong name or password.")
        token = secrets.token_urlsafe(32)
        now = now_ms()
        expires = now + self.settings.console_session_seconds * 1000

        def open_session(conn: Any) -> None:
            web_store.start_session(conn, token_hash(token), area, subject, secrets.token_urlsafe(32), now, expires)
            if audit is not None:
                audit(conn, subject, now)

        await store.write(open_session)
        response = self.redirect(f"/{area}/")
        response.set_cookie(
            self.cookie_name(area),
            token,
            max_age=self.settings.console_session_seconds,
            path=f"/{area}",
            httponly=True,
            samesite="lax",
            secure=self.over_tls(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path=f"/{area}")
        return response

    async def sign_out(self, request: Request, area: str) -> Response:
        session = await self.session(request, area)
        await self.form_of(request, session)
        await self.store(request).write(web_store.end_session, session.token_hash)
        response = self.redirect(f"/{area}/login")
        response.delete_cookie(self.cookie_name(area), path=f"/{area}")
        return response


def guarded(web: Web, area: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    """Turns Refusal into its response and an unavailable store into a 503 page."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except Refusal as refusal:
            return refusal.response
        except StoreUnavailable:
            return web.error_page(area, 503, "The store is unavailable; try again shortly.")

    run.__name__ = handler.__name__
    return run


def seconds_ago(seconds: int) -> int:
    return int((time.time() - seconds) * 1000)
