"""Fixtures of the client tests: a real gateway on loopback (SQLite, ample credit), a real
HTTP proxy in front of it that can lose or fake answers, and the `smsgw` command."""

from __future__ import annotations

import contextlib
import csv
import http.server
import os
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ..helpers import DEFAULT_KEY, LiveServer, Operator, make_settings, smsgw_command

PARTNER = "p1"
SHORTCODE = "SC1"
CREDITS = 100_000_00  # 100,000 units: enough for every test's campaign


@dataclass
class ClientGateway:
    server: LiveServer
    operator: Operator

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def sqlite_path(self) -> str:
        return self.server.settings.database_url.sqlite_path

    def message_count(self) -> int:
        return self.operator.sql("SELECT count(*) FROM messages")[0][0]

    def charges(self) -> list[dict[str, Any]]:
        return [entry for entry in self.operator.ledger(PARTNER) if entry["kind"] == "charge"]

    def copies_per_clientsmsid(self) -> dict[str, int]:
        rows = self.operator.sql("SELECT clientsmsid, count(*) FROM messages GROUP BY clientsmsid")
        return dict(rows)

    def client_env(self, **extra: str | None) -> dict[str, str | None]:
        """The connection variables of a `smsgw` client command pointed at this gateway
        (None: unset)."""
        values: dict[str, str | None] = {
            "SMSGW_URL": self.url,
            "SMSGW_PARTNER_ID": PARTNER,
            "SMSGW_API_KEY": DEFAULT_KEY,
            "SMSGW_SHORTCODE": SHORTCODE,
        }
        values.update(extra)
        return values

    def env(self, **extra: str) -> dict[str, str]:
        """A whole process environment for the command (see client_env)."""
        values = dict(os.environ)
        values.update({k: v for k, v in self.client_env(**extra).items() if v is not None})
        return values


@pytest.fixture
def start_gateway(tmp_path) -> Iterator[Callable[..., ClientGateway]]:
    """Starts a gateway with extra SMSGW_* settings; partner p1 (shortcode SC1) is ready."""
    with contextlib.ExitStack() as stack:
        started = 0

        def start(**env: str) -> ClientGateway:
            nonlocal started
            started += 1
            settings = make_settings(f"sqlite:///{tmp_path / f'gateway{started}.db'}", **env)
            operator = Operator(settings)
            operator.partner(PARTNER, credits=CREDITS, shortcode=SHORTCODE)
            server = stack.enter_context(LiveServer(settings))
            return ClientGateway(server, operator)

        yield start


@pytest.fixture
def gw(start_gateway) -> ClientGateway:
    return start_gateway()


# -- a proxy that loses answers -------------------------------------------------------------------

FORWARD = "forward"  # pass the request on and the answer back
FAKE_4090 = "fake_4090"  # pass the request on (the gateway commits), answer the client 4090
DROP = "drop"  # pass the request on, then close the connection without an answer
STALL = "stall"  # pass the request on, answer nothing until the client's next request arrives
HOLD = "hold"  # pass the request on, keep the answer until release()
REFUSE_4090 = "refuse_4090"  # answer 4090 without passing the request on

TRY_AGAIN = orjson.dumps({"response-code": 4090, "response-description": "Internal Error. Try again after 5 minutes"})


@dataclass
class Seen:
    path: str
    idempotency_key: str | None
    action: str


class FaultProxy:
    """A real HTTP server on loopback in front of the gateway. `plan(n, path)` picks what
    happens to the n-th request (from 1); `rewrite(path, body)` may change the answers
    (to speak like another provider)."""

    def __init__(self, upstream: str, plan: Callable[[int, str], str] | None = None, rewrite: Callable[[str, bytes], bytes] | None = None) -> None:
        self.upstream = upstream
        self.plan = plan or (lambda n, path: FORWARD)
        self.rewrite = rewrite
        self.seen: list[Seen] = []
        self.forwarded = 0
        self.answered = 0
        self.released = threading.Event()
        self.next_request = threading.Event()
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=60)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.relay(b"")

            def do_POST(self) -> None:
                self.relay(self.rfile.read(int(self.headers.get("content-length") or 0)))

            def relay(self, body: bytes) -> None:
                key = self.headers.get("idempotency-key")
                with proxy._lock:
                    number = len(proxy.seen) + 1
                    action = proxy.plan(number, self.path)
                    proxy.seen.append(Seen(self.path, key, action))
                proxy.next_request.set()
                if action == REFUSE_4090:
                    return self.answer(200, TRY_AGAIN)
                headers = {name: value for name, value in self.headers.items() if name.lower() in ("content-type", "idempotency-key")}
                upstream = proxy._http.request(self.command, proxy.upstream + self.path, content=body or None, headers=headers)
                with proxy._lock:
                    proxy.forwarded += 1
                content = upstream.content
                if proxy.rewrite is not None:
                    content = proxy.rewrite(self.path, content)
                if action == FAKE_4090:
                    return self.answer(200, TRY_AGAIN)
                if action == DROP:
                    self.close_connection = True
                    return None
                if action == STALL:
                    proxy.next_request.clear()
                    proxy.next_request.wait(timeout=30)
                    self.close_connection = True
                    return None
                if action == HOLD:
                    proxy.released.wait(timeout=60)
                self.answer(upstream.status_code, content)
                return None

            def answer(self, status: int, content: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                    self.wfile.flush()
                except OSError:
                    return  # the client is gone (killed): nothing to answer
                with proxy._lock:
                    proxy.answered += 1

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.released.set()
        self.next_request.set()
        self.server.shutdown()
        self.server.server_close()
        self._http.close()

    def sendbulk_requests(self) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.startswith("/api/services/sendbulk")]


@pytest.fixture
def proxy_for(gw) -> Iterator[Callable[..., FaultProxy]]:
    with contextlib.ExitStack() as stack:
        yield lambda plan=None, rewrite=None: stack.enter_context(FaultProxy(gw.url, plan, rewrite))


class SqliteWriteLock:
    """Another connection holding the gateway's SQLite write lock until `release()`, which
    may be called from any thread (e.g. the client's retry hook)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("BEGIN EXCLUSIVE")
        self._lock = threading.Lock()
        self.held = True

    def release(self) -> None:
        with self._lock:
            if self.held:
                self._conn.execute("ROLLBACK")
                self._conn.close()
                self.held = False


# -- CSV files and the command ------------------------------------------------------------------------


def kenyan_number(i: int) -> str:
    """Distinct valid Safaricom numbers: 0710000000, 0710000001, ..."""
    return f"07{10_000_000 + i:08d}"


def write_csv(path: Path, header: list[str], rows: list[list[Any]] | Iterator[list[Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def campaign_csv(path: Path, count: int) -> Path:
    return write_csv(path, ["name", "mobile"], ([f"Customer {i}", kenyan_number(i)] for i in range(count)))


def read_results(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def smsgw(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real command in its own process."""
    return subprocess.run(smsgw_command() + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def smsgw_in_process(args: list[str], env: dict[str, str | None]) -> subprocess.CompletedProcess:
    """The same command run by click in this process (faster; for checks of its output).
    `env` values of None unset a variable."""
    from click.testing import CliRunner

    from smsgw.cli.main import main

    outcome = CliRunner(env=env, catch_exceptions=False).invoke(main, args)
    return subprocess.CompletedProcess(args, outcome.exit_code, outcome.stdout, outcome.stderr)
