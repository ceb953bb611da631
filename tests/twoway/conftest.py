from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from smsgw.api.acceptance import Acceptance
from smsgw.api.auto_reply import AutoReplies
from smsgw.dispatch.dispatcher import Dispatcher
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery

from ..connectors.conftest import connector_factory  # noqa: F401 - fixtures shared with the connector and dispatch tests
from ..dispatch.conftest import Rig, rig, rig_factory  # noqa: F401


class PartnerEndpoint:
    """A partner's inbound endpoint on loopback: records each request (method, path and
    query, body, signature) and answers `status` with `reply` as its text body."""

    def __init__(self, status: int = 200, reply: str = "") -> None:
        self.status = status
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                endpoint.requests.append(
                    {"method": self.command, "query": urlsplit(self.path).query, "body": body, "signature": self.headers.get("X-Smsgw-Signature")}
                )
                payload = endpoint.reply.encode()
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/inbound"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.asynccontextmanager
async def two_way(gateway_rig: Rig, binds: int = 1, **options: Any) -> AsyncIterator[Dispatcher]:
    """Delivery as `smsgw serve` runs it (auto-replies on), over `binds` connections to the
    rig's simulator."""
    urls = [gateway_rig.smsc_url(name=f"carrier{i}" if binds > 1 else "carrier", **options) for i in range(binds)]
    settings, store = gateway_rig.settings, gateway_rig.store
    plan = DeliveryPlan.from_urls(urls, settings)
    replies = AutoReplies(Acceptance(settings, store, plan.routed_networks(settings)))
    async with run_delivery(store, settings, plan, auto_reply=replies) as dispatcher:
        for lane in dispatcher.lanes:
            assert await lane.connector.wait_bound(10)
        yield dispatcher
