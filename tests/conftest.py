from __future__ import annotations

import httpx
import pytest

from .helpers import Gateway, LiveServer, Operator, make_settings


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path)


@pytest.fixture
def operator(settings):
    return Operator(settings)


@pytest.fixture
def gateway(settings, operator):
    """A real gateway on loopback with partner p1 (shortcode SC1, 1000 units)."""
    operator.partner("p1", shortcode="SC1")
    with LiveServer(settings) as server, httpx.Client(timeout=30) as client:
        yield Gateway(server, operator, client)
