"""What operators and their tools ask the gateway: liveness and readiness for load balancers
and orchestrators, `GET /metrics` for Prometheus, and the API docs served from the package
(no CDN: a gateway without internet access still shows them)."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from .. import metrics
from ..config import Settings
from ..store.errors import StoreUnavailable
from ..store.figures import scrape_figures
from ..store.migrate import current_revision, head_revision
from ..store.store import Store, now_ms
from . import schemas
from .responses import status_answer

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
ASSETS = "/api-docs-assets"


def bound_connections(dispatcher: Any) -> dict[str, bool] | None:
    """SMSC name -> bound, for a process that dispatches; None for one that does not."""
    if dispatcher is None:
        return None
    return {lane.config.name: bool(lane.active and getattr(lane.connector, "bound", False)) for lane in dispatcher.lanes}


def operations_app(settings: Settings, store: Store, dispatcher: Any) -> FastAPI:
    """/metrics and /health/* alone, for a process that only dispatches."""
    app = FastAPI(title="smsgw dispatcher", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.dispatcher = dispatcher
    add_operations_routes(app, settings, docs=False)
    return app


def add_operations_routes(app: FastAPI, settings: Settings, docs: bool = True) -> None:
    head = head_revision()

    async def live(_request: Request) -> Response:
        """200 while the process runs and answers HTTP."""
        return status_answer({"status": "live"})

    async def ready(request: Request) -> Response:
        """200 when this process can do its work: the store answers, its schema is the one
        this version needs, and (for a process that dispatches) at least one SMSC is bound.
        503 with the reasons otherwise."""
        problems: list[str] = []
        try:
            revision = await request.app.state.store.read(current_revision)
            if revision != head:
                problems.append(f"schema at {revision or 'nothing'}, this version needs {head}: run `smsgw migrate`")
        except StoreUnavailable:
            problems.append("store unavailable")
        except Exception as exc:
            log.warning("readiness: the store is not usable: %s", type(exc).__name__)
            problems.append("store not usable")
        bound = bound_connections(request.app.state.dispatcher)
        if bound is not None and not any(bound.values()):
            problems.append("no SMSC bound")
        if problems:
            return status_answer({"status": "not ready", "problems": problems}, status_code=503)
        return status_answer({"status": "ready"})

    async def scrape(request: Request) -> Response:
        """Prometheus text format; with SMSGW_METRICS_TOKEN set, only with that bearer token."""
        token = settings.metrics_token
        if token is not None:
            presented = request.headers.get("authorization", "").encode("utf-8", "surrogatepass")
            if not hmac.compare_digest(presented, f"Bearer {token}".encode()):
                return Response(
                    "metrics need the bearer token (SMSGW_METRICS_TOKEN)\n",
                    status_code=401,
                    media_type="text/plain",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        try:
            figures = await request.app.state.store.read(scrape_figures, now_ms())
        except Exception as exc:  # the counters still go out; smsgw_store_up says the rest is missing
            log.warning("metrics: store figures unavailable: %s", type(exc).__name__)
            figures = None
        dispatcher = request.app.state.dispatcher
        routes = dispatcher.route_states() if dispatcher is not None else None
        return Response(metrics.render(figures, bound_connections(dispatcher), routes), media_type=metrics.CONTENT_TYPE)

    health_doc: dict[int | str, dict[str, Any]] = {
        "200": {"description": "Ready.", "content": {"application/json": {"schema": schemas.ref(schemas.HealthStatus)}}}
    }
    not_ready: dict[int | str, dict[str, Any]] = {
        "503": {"description": "Not ready, with the reasons.", "content": {"application/json": {"schema": schemas.ref(schemas.HealthStatus)}}}
    }
    app.add_api_route("/health/live", live, methods=["GET"], summary="Liveness", tags=["operations"], response_class=Response, responses=health_doc)
    app.add_api_route(
        "/health/ready",
        ready,
        methods=["GET"],
        summary="Readiness",
        tags=["operations"],
        response_class=Response,
        responses={**health_doc, **not_ready},
    )
    app.add_api_route(
        "/metrics",
        scrape,
        methods=["GET"],
        summary="Prometheus metrics",
        tags=["operations"],
        response_class=Response,
        responses={"200": {"description": "Prometheus text exposition format.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
    )

    async def swagger(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{ASSETS}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/swagger-ui/favicon-32x32.png",
            # Swagger UI would otherwise ask an outside validator service for a badge.
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def redoc(_request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - reference",
            redoc_js_url=f"{ASSETS}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )

    if not docs:
        return
    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="api-docs-assets")
