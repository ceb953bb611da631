"""HTTP limits of the gateway's server, from raw sockets against real `smsgw serve` processes on
127.0.0.1: time limits for the head and the body, idle keep-alive, head size limits, the
connection limit, and throttled accept-error logging."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest

from smsgw.api.http import ConnectionBook, LogThrottle
from smsgw.config import ConfigError, Settings

from ..helpers import free_port, start_serve

LOOPBACK = "127.0.0.1"
SHORT = 0.5  # seconds: the head, body and keep-alive limits of the short-limits server
HEALTH = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"


class Server:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection((LOOPBACK, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def stop(self) -> str:
        self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output or ""


def serve(directory: Path, descriptor_limit: int | None = None, **limits: str) -> Server:
    port = free_port()
    env = {"SMSGW_DATABASE_URL": f"sqlite:///{directory / 'gw.db'}", **limits}
    return Server(start_serve(env, port, directory, ["--role", "api"], descriptor_limit=descriptor_limit), port)


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> Iterator[Server]:
    """Head, body and keep-alive limits of SHORT seconds; small head size limits."""
    server = serve(
        tmp_path_factory.mktemp("short"),
        SMSGW_HTTP_HEAD_TIMEOUT_SECONDS=str(SHORT),
        SMSGW_HTTP_BODY_TIMEOUT_SECONDS=str(SHORT),
        SMSGW_HTTP_BODY_MIN_BYTES_PER_SECOND="1000",
        SMSGW_HTTP_KEEP_ALIVE_SECONDS=str(SHORT),
        SMSGW_HTTP_MAX_HEAD_BYTES="8192",
        SMSGW_HTTP_MAX_HEADER_LINE_BYTES="2048",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def crowded(tmp_path_factory) -> Iterator[Server]:
    """20 connections at most, long time limits (so only the connection limit frees
    anything), and a descriptor limit of 200 for the whole process."""
    server = serve(tmp_path_factory.mktemp("crowded"), descriptor_limit=200, SMSGW_HTTP_MAX_CONNECTIONS="20", SMSGW_HTTP_HEAD_TIMEOUT_SECONDS="60")
    yield server
    server.stop()


def read_answer(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of one answer, read exactly (a pipelined answer may follow)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed after {head!r}")
        head += byte
    lines = head[:-4].split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
    body = b""
    while len(body) < int(headers[b"content-length"]):
        chunk = sock.recv(int(headers[b"content-length"]) - len(body))
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    return int(lines[0].split()[1]), orjson.loads(body)


def read_answer_bytes(data: bytes) -> tuple[int, dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b"\r\n")[0].split()[1]), orjson.loads(body)


def seconds_until_closed(sock: socket.socket, limit: float, trickle: bytes = b"") -> tuple[float, bytes]:
    """How long until the server closes `sock` (at most `limit`), and what it sent meanwhile.
    With `trickle`, one byte of it is sent every 0.1 s while waiting."""
    began = time.monotonic()
    received = b""
    sock.settimeout(0.1)
    position = 0
    while time.monotonic() - began < limit:
        if position < len(trickle):
            try:
                sock.sendall(trickle[position : position + 1])
            except OSError:
                break
            position += 1
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return time.monotonic() - began, received


UNFINISHED = [
    pytest.param(b"", b"", id="nothing-sent"),
    pytest.param(b"POST /api/services/send", b"", id="partial-request-line"),
    pytest.param(b"POST /api/services/sendbulk HTTP/1.1\r\nHost: t\r\nContent-Ty", b"", id="partial-headers"),
    pytest.param(b"POST /api/services/sendbulk HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"{" * 100, b"", id="half-body"),
    pytest.param(b"POST /api/services/sendbulk HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n", b"x" * 60, id="body-below-minimum-rate"),
    pytest.param(b"POST /api/services/sendbulk HTTP/1.1\r\nHost: t\r\n", b"X-Slow: " + b"a" * 60, id="head-trickled"),
    pytest.param(b"\r\n", b"\r\n" * 30, id="blank-lines-trickled"),
    pytest.param(HEALTH, b"", id="idle-keep-alive"),
]


@pytest.mark.parametrize("sent, trickle", UNFINISHED)
def test_an_unfinished_request_or_an_idle_connection_is_closed_within_its_limit(short: Server, sent: bytes, trickle: bytes):
    with short.connect() as sock:
        sock.sendall(sent)
        elapsed, received = seconds_until_closed(sock, limit=4.0, trickle=trickle)
    # The limit plus what the allowance of 1000 bytes/s gives for the body bytes, plus the
    # machine's scheduling noise; uvicorn's own keep-alive is 5 s, a held connection 4.
    assert elapsed < 3.0, f"still open after {elapsed:.1f} s"
    if sent.startswith(b"POST") and b"\r\n\r\n" not in sent:
        status, body = read_answer_bytes(received)
        assert status == 408 and body["response-code"] == 1010


HEADS = [
    pytest.param(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n", 431, id="one-header-line-over-limit"),
    pytest.param(
        b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1500) for i in range(8)) + b"\r\n",
        431,
        id="headers-over-total",
    ),
    pytest.param(b"GET /health?q=" + b"a" * 3000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, id="request-line-over-limit"),
    pytest.param(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Huge: " + b"a" * (2 * 2**20) + b"\r\n\r\n", 431, id="2-MiB-header"),
]


@pytest.mark.parametrize("request_bytes, status", HEADS)
def test_an_oversized_request_head_is_refused_with_the_contract_body(short: Server, request_bytes: bytes, status: int):
    before = short.rss()
    with short.connect() as sock:
        try:
            sock.sendall(request_bytes)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest was read
        got, body = read_answer(sock)
    assert (got, body["response-code"]) == (status, 1010)
    assert "bytes" in body["response-description"]
    assert short.rss() - before < 16 * 2**20


def test_an_oversized_head_pipelined_after_a_valid_request_is_refused_after_its_answer(short: Server):
    with short.connect() as sock:
        sock.sendall(HEALTH + b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
        first = read_answer(sock)
        second = read_answer(sock)
    assert first[0] == 200
    assert (second[0], second[1]["response-code"]) == (431, 1010)


def test_past_the_connection_limit_a_new_connection_is_refused_and_held_ones_still_work(crowded: Server):
    held = [crowded.connect() for _ in range(20)]
    try:
        for sock in held:  # each has sent a request: none may be closed for a newcomer
            sock.sendall(HEALTH)
            assert read_answer(sock)[0] == 200
        with crowded.connect() as newcomer:
            newcomer.sendall(HEALTH)
            status, body = read_answer(newcomer)
            assert (status, body["response-code"]) == (503, 4090)
        held[0].sendall(HEALTH)
        assert read_answer(held[0])[0] == 200
    finally:
        for sock in held:
            sock.close()


def test_with_many_slowloris_connections_open_a_valid_request_is_answered(crowded: Server):
    """200 connections with partial heads against a process limited to 200 descriptors (and
    to 20 connections): the oldest waiting ones make room, the valid request is answered."""
    slow = []
    try:
        for _ in range(200):
            sock = crowded.connect()
            sock.sendall(b"POST /api/services/sendbulk HTTP/1.1\r\nHost: t\r\nX-Wait: ")
            slow.append(sock)
        began = time.monotonic()
        with crowded.connect() as valid:
            valid.sendall(HEALTH)
            assert read_answer(valid)[0] == 200
        assert time.monotonic() - began < 3.0
        closed = 0
        for sock in slow:
            sock.settimeout(0.01)
            try:
                closed += sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 180, f"only {closed} of 200 waiting connections closed for newer ones"
    finally:
        for sock in slow:
            sock.close()


def test_accept_errors_are_logged_at_most_every_few_seconds(tmp_path: Path):
    """A process limited to 100 descriptors with the default connection limit (1000): 150
    held connections exhaust the descriptors, and asyncio reports every failed accept."""
    server = serve(tmp_path, descriptor_limit=100, SMSGW_HTTP_HEAD_TIMEOUT_SECONDS="60")
    held: list[socket.socket] = []
    try:
        for _ in range(150):
            held.append(server.connect())
        time.sleep(3.0)
    finally:
        for sock in held:
            sock.close()
        output = server.stop()
    reports = [line for line in output.splitlines() if "Too many open files" in line]
    assert 1 <= len(reports) <= 2, f"{len(reports)} lines:\n" + "\n".join(output.splitlines()[:20])


THROTTLE = [
    pytest.param([0.0], [0], id="first-line-passes"),
    pytest.param([0.0, 1.0, 4.9], [0, None, None], id="held-within-interval"),
    pytest.param([0.0, 1.0, 2.0, 5.0], [0, None, None, 2], id="next-line-counts-held-ones"),
    pytest.param([0.0, 5.0, 10.0], [0, 0, 0], id="one-per-interval-none-held"),
    pytest.param([0.0, 3.0, 6.0, 7.0, 11.0], [0, None, 1, None, 1], id="interval-from-last-logged"),
    pytest.param([100.0, 100.0, 100.0], [0, None, None], id="burst-at-one-instant"),
]


@pytest.mark.parametrize("times, expected", THROTTLE)
def test_log_throttle(times: list[float], expected: list[int | None]):
    throttle = LogThrottle(interval=5.0)
    assert [throttle.admit(t) for t in times] == expected


BOOK = [
    # (operations, limit, outcomes): "+x" connects x; "hx" x sent a head; "-x" x closed.
    pytest.param(["+a", "+b"], 2, [(True, None), (True, None)], id="under-limit"),
    pytest.param(["+a", "+b", "+c"], 2, [(True, None), (True, None), (True, "a")], id="oldest-waiting-makes-room"),
    pytest.param(["+a", "+b", "ha", "+c"], 2, [(True, None), (True, None), None, (True, "b")], id="one-that-sent-a-request-is-kept"),
    pytest.param(["+a", "+b", "ha", "hb", "+c"], 2, [(True, None), (True, None), None, None, (False, None)], id="all-sent-requests-new-refused"),
    pytest.param(["+a", "+b", "ha", "hb", "-a", "+c"], 2, [(True, None), (True, None), None, None, None, (True, None)], id="closed-frees-a-place"),
    pytest.param(["+a", "+b", "+c", "+d"], 2, [(True, None), (True, None), (True, "a"), (True, "b")], id="evictions-in-age-order"),
]


@pytest.mark.parametrize("operations, limit, expected", BOOK)
def test_connection_book(operations: list[str], limit: int, expected: list):
    book: ConnectionBook[str] = ConnectionBook(limit)
    outcomes = []
    for operation in operations:
        kind, name = operation[0], operation[1:]
        if kind == "+":
            outcomes.append(book.admit(name))
        elif kind == "h":
            outcomes.append(book.head_received(name))
        else:
            outcomes.append(book.closed(name))
    assert outcomes == expected
    assert len(book.open) <= limit


SETTINGS = [
    pytest.param({"SMSGW_HTTP_HEAD_TIMEOUT_SECONDS": "0"}, "SMSGW_HTTP_HEAD_TIMEOUT_SECONDS", id="head-timeout-zero"),
    pytest.param({"SMSGW_HTTP_BODY_MIN_BYTES_PER_SECOND": "fast"}, "SMSGW_HTTP_BODY_MIN_BYTES_PER_SECOND", id="rate-not-a-number"),
    pytest.param({"SMSGW_HTTP_MAX_HEAD_BYTES": "100"}, "SMSGW_HTTP_MAX_HEAD_BYTES", id="head-limit-too-small"),
    pytest.param({"SMSGW_HTTP_MAX_HEADER_LINE_BYTES": "65536"}, "SMSGW_HTTP_MAX_HEADER_LINE_BYTES", id="line-limit-over-head-limit"),
    pytest.param({"SMSGW_HTTP_MAX_CONNECTIONS": "0"}, "SMSGW_HTTP_MAX_CONNECTIONS", id="no-connections"),
    pytest.param({"SMSGW_HTTP_KEEP_ALIVE_SECONDS": "inf"}, "SMSGW_HTTP_KEEP_ALIVE_SECONDS", id="keep-alive-infinite"),
]


@pytest.mark.parametrize("env, named", SETTINGS)
def test_a_wrong_http_setting_stops_the_gateway_with_its_name(env: dict[str, str], named: str):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env({"SMSGW_DATABASE_URL": "sqlite:///x.db", **env})
