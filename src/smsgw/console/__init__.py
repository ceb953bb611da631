"""The web console (/console/, for operators) and the partner portal (/portal/), served by the
gateway's own ASGI app (docs/console.md)."""

from __future__ import annotations

from fastapi import FastAPI

from ..config import Settings
from . import campaign_pages, operator_pages, portal_pages
from .web import Web


def add_console_routes(app: FastAPI, settings: Settings) -> None:
    web = Web(settings)
    for router in (web.static_router(), operator_pages.router(web), portal_pages.router(web), campaign_pages.router(web)):
        app.include_router(router, include_in_schema=False)
