"""What the API's handlers read from `app.state`, typed: `create_app` puts the settings and the
responder there when it builds the app, the store and the acceptance service when it starts."""

from __future__ import annotations

from starlette.requests import Request

from ..config import Settings
from ..store.store import Store
from .acceptance import Acceptance
from .responses import Responder


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def responder_of(request: Request) -> Responder:
    return request.app.state.responder


def acceptance_of(request: Request) -> Acceptance:
    return request.app.state.acceptance


def store_of(request: Request) -> Store:
    return request.app.state.store
