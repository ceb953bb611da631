"""Test helpers: a real gateway on loopback, and an operator that sets up partners."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from smsgw.api.app import create_app
from smsgw.api.http import server_options
from smsgw.config import Settings
from smsgw.store.store import Store, open_store

DEFAULT_KEY = "test-key-0123456789abcdef"


def run(coro):
    return asyncio.run(coro)


class Operator:
    """Sets up and inspects the store from the test's side, with its own connections."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _with_store(self, operation: Callable[[Store], Any]) -> Any:
        async def body():
            store = open_store(self.settings)
            try:
                await store.prepare()
                return await operation(store)
            finally:
                await store.close()

        # A thread of its own, so that async tests (with a running loop) can use it too.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, body()).result()

    def partner(
        self,
        partner_id: str,
        credits: int = 1000_00,
        key: str = DEFAULT_KEY,
        shortcode: str | None = None,
        networks=None,
        parent: str | None = None,
        rate: int = 100,
        allow_private: bool = True,
    ) -> str:
        """A partner; `allow_private`: its callback and inbound URLs may be the test's
        receivers on loopback."""

        async def op(store: Store):
            hasher = await store.api_key_hasher(self.settings.api_key_secret)
            await store.create_partner(partner_id, partner_id, hasher.hash(key), credits, parent_id=parent, rate=rate)
            if allow_private:
                await store.allow_private_destinations(partner_id, True)
            if shortcode is not None:
                await store.add_shortcode(shortcode, partner_id, networks)

        self._with_store(op)
        return key

    def balance(self, partner_id: str) -> int:
        async def op(store: Store):
            return (await store.get_partner(partner_id)).balance

        return self._with_store(op)

    def ledger(self, partner_id: str) -> list[dict[str, Any]]:
        return self._with_store(lambda store: store.ledger_entries(partner_id))

    def sql(self, statement: str, params: dict | None = None) -> list[tuple]:
        from sqlalchemy import text

        def run_sql(conn):
            result = conn.execute(text(statement), params or {})
            return [tuple(r) for r in result.all()] if result.returns_rows else []

        return self._with_store(lambda store: store.write(run_sql))

    def suspend(self, partner_id: str) -> None:
        self._with_store(lambda store: store.set_partner_status(partner_id, "suspended"))

    def console_operator(self, name: str, password: str) -> None:
        """An operator of the web console, as `smsgw operator create` makes one."""
        from smsgw.domain.passwords import hash_password
        from smsgw.store import web

        self._with_store(lambda store: store.write(web.create_operator, name, hash_password(password), int(time.time() * 1000)))

    def portal_password(self, partner_id: str, password: str) -> None:
        """The partner's portal password, as `smsgw partner portal-password` sets it."""
        from smsgw.domain.passwords import hash_password
        from smsgw.store import web

        self._with_store(lambda store: store.write(web.set_portal_password, partner_id, hash_password(password), int(time.time() * 1000)))


def make_settings(database_url: str, **env: str) -> Settings:
    values = {"SMSGW_DATABASE_URL": database_url}
    values.update(env)
    return Settings.from_env(values)


class LiveServer:
    """The real ASGI app under uvicorn on 127.0.0.1, in a thread with its own event loop."""

    def __init__(self, settings: Settings, **app_options: Any) -> None:
        self.settings = settings
        self.app = app = create_app(settings, **app_options)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on", **server_options(settings))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass
class Gateway:
    """A running gateway plus what tests need to talk to it."""

    server: LiveServer
    operator: Operator
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(self.url + path, json=json, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self.url + path, **kwargs)


def accept_groups(gateway: Gateway) -> tuple[int, int]:
    """(transactions, requests) of the gateway's accepting group commit so far."""
    groups = gateway.server.app.state.store.accept_groups
    return groups.groups, groups.items


def warm_up(gateway: Gateway, sends: list[dict[str, Any]]) -> None:
    """One refused sendsms per partner of `sends` (an invalid number: nothing is stored or
    charged): its key is verified and a block of message ids reserved, so that the requests
    that follow do not wait in line for either and reach the accepting transaction together."""
    for partner_id, api_key, shortcode in {(f["partnerID"], f["apikey"], f["shortcode"]) for f in sends}:
        fields = {"partnerID": partner_id, "apikey": api_key, "shortcode": shortcode, "message": "warm-up", "mobile": "123"}
        assert gateway.post("/api/services/sendsms", data=fields).json()["responses"][0]["response-code"] == 1003


def single_sends_at_once(
    gateway: Gateway, fields: dict[str, Any] | list[dict[str, Any]], count: int, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    """`count` one-number sendsms requests posted at once (`fields` for each, or a list of
    them): while the first is being committed the others queue, so on SQLite they share
    commits."""
    each = fields if isinstance(fields, list) else [fields] * count
    warm_up(gateway, each)

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(each), max_keepalive_connections=len(each))
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*[client.post(gateway.url + "/api/services/sendsms", data=f, headers=headers) for f in each])

    return asyncio.run(fire())


def entry(
    mobile: Any = "0712345678", message: str = "Hello", *, partner: str = "p1", key: str = DEFAULT_KEY, shortcode: str = "SC1", **extra: Any
) -> dict[str, Any]:
    item = {"partnerID": partner, "apikey": key, "pass_type": "plain", "mobile": mobile, "message": message, "shortcode": shortcode}
    item.update(extra)
    return item


def bulk(*entries: dict[str, Any], count: Any = "auto") -> dict[str, Any]:
    body: dict[str, Any] = {"smslist": list(entries)}
    if count == "auto":
        body["count"] = len(entries)
    elif count is not None:
        body["count"] = count
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smsgw_command() -> list[str]:
    """The installed console script, run with this interpreter's environment."""
    return [sys.executable, "-m", "smsgw"]


def start_serve(
    env: dict[str, str], port: int, cwd: Path, extra: list[str] | None = None, descriptor_limit: int | None = None, healthy_within: float = 30
) -> subprocess.Popen:
    """`smsgw serve` on 127.0.0.1:port; `descriptor_limit` sets the process's RLIMIT_NOFILE."""
    full_env = dict(os.environ)
    full_env.update(env)
    # The server runs in `cwd`: a relative PYTHONPATH (PYTHONPATH=src) must still name this tree.
    if full_env.get("PYTHONPATH"):
        full_env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(entry) for entry in full_env["PYTHONPATH"].split(os.pathsep))

    def limit_descriptors() -> None:
        if descriptor_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptor_limit, descriptor_limit))

    process = subprocess.Popen(
        smsgw_command() + ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"] + (extra or []),
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=limit_descriptors if descriptor_limit is not None else None,
    )
    wait_until_healthy(f"http://127.0.0.1:{port}", process, healthy_within)
    return process


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"smsgw serve exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("smsgw serve did not become healthy")


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, explain: str | Callable[[], Any] | None = None, *, interval: float = 0.05
) -> Any:
    """Polls until `predicate()` (sync or async) is truthy and returns its value; fails the
    test on timeout with `explain` (what was awaited, or a function that describes the state
    it was left in)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            detail = explain() if callable(explain) else explain
            raise AssertionError(f"condition not met within {timeout} s" + (f": {detail}" if detail else ""))
        await asyncio.sleep(interval)
