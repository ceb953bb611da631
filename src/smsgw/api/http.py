"""The HTTP server's own limits: uvicorn's httptools protocol with time limits for the request
head and body, head size limits, a connection limit, and throttled accept-error logging.

uvicorn has a keep-alive timeout but nothing for a client that never finishes its request:
partial request lines, partial headers and half bodies held a descriptor each for ever, and
a header had no size limit at all (httptools buffers it whole). The subclass below adds the
missing timers and counters to the same parser and request cycle, so the path of a normal
request is unchanged (docs/architecture.md, "HTTP limits").
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import resource
import time
import weakref
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ..config import Settings
from ..domain.codes import Code
from .responses import Responder

log = logging.getLogger("smsgw.http")

# Errors of accept() that say the process or the system is out of something; the loop reports
# each failed attempt, thousands a second while descriptors are exhausted.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
LOG_INTERVAL_SECONDS = 5.0
# Descriptors beyond the HTTP connections: the store's pool and files, SMSC binds, logs.
DESCRIPTOR_RESERVE = 256


@dataclass(frozen=True)
class HttpLimits:
    head_timeout: float
    body_timeout: float
    body_min_rate: int
    max_head_bytes: int
    max_header_line_bytes: int
    keep_alive: float
    max_connections: int
    responder: Responder

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            head_timeout=settings.http_head_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            body_min_rate=settings.http_body_min_bytes_per_second,
            max_head_bytes=settings.http_max_head_bytes,
            max_header_line_bytes=settings.http_max_header_line_bytes,
            keep_alive=settings.http_keep_alive_seconds,
            max_connections=settings.http_max_connections,
            responder=Responder.of(settings),
        )


class LogThrottle:
    """At most one line per `interval` seconds; the lines held back in between are counted and
    reported with the next line let through."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.last: float | None = None
        self.held = 0

    def admit(self, now: float) -> int | None:
        """None: hold this line back. Otherwise log it, with the returned number of lines
        held back since the previous one."""
        if self.last is not None and now - self.last < self.interval:
            self.held += 1
            return None
        held, self.held, self.last = self.held, 0, now
        return held


def is_resource_error(context: dict[str, Any]) -> bool:
    exc = context.get("exception")
    return isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS


def install_accept_error_throttle(loop: asyncio.AbstractEventLoop, clock: Any = time.monotonic) -> None:
    """Out-of-descriptor errors reported to `loop` are logged at most once per
    LOG_INTERVAL_SECONDS, with a count and no traceback; everything else as before."""
    throttle = LogThrottle()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if is_resource_error(context):
            held = throttle.admit(clock())
            if held is not None:
                more = f" ({held} more since the last report)" if held else ""
                log.error("%s: %s%s", context.get("message", "accept failed"), context["exception"], more)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's loop choice (uvloop when installed), with accept errors throttled; the loop
    factory of API worker processes."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    install_accept_error_throttle(loop)
    return loop


Connection = TypeVar("Connection", bound=Hashable)


class ConnectionBook(Generic[Connection]):
    """Open connections of one server and which of them have not yet sent a request head.

    Past the limit, the connection that has waited longest for its first request head makes
    room for the new one: it has asked for nothing, and a slow or hostile client is the one
    that waits longest. Connections that sent a request are never closed for another (their
    client may be waiting for an answer); when all of them did, the new one is refused.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: set[Connection] = set()
        self.waiting: dict[Connection, None] = {}  # insertion order = oldest first

    def admit(self, connection: Connection) -> tuple[bool, Connection | None]:
        """(admitted, the connection to close to make room for it)."""
        evicted: Connection | None = None
        if len(self.open) >= self.limit:
            if not self.waiting:
                return False, None
            evicted = next(iter(self.waiting))
            self.closed(evicted)
        self.open.add(connection)
        self.waiting[connection] = None
        return True, evicted

    def head_received(self, connection: Connection) -> None:
        self.waiting.pop(connection, None)

    def closed(self, connection: Connection) -> None:
        self.open.discard(connection)
        self.waiting.pop(connection, None)


_books: weakref.WeakKeyDictionary[ServerState, ConnectionBook[Any]] = weakref.WeakKeyDictionary()


def book_of(server_state: ServerState, limit: int) -> ConnectionBook[Any]:
    book = _books.get(server_state)
    if book is None:
        book = _books[server_state] = ConnectionBook(limit)
    return book


class HeadTooLarge(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of HttpLimits.

    Timers: the head timer runs from the connection (or from the first byte after a response)
    to the end of the request head; the body timer allows `body_timeout` plus one second per
    `body_min_rate` bytes received, so a slow sender must keep sending to keep its connection.
    Neither counts time the server itself spends on an earlier request of the connection.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.timeout_keep_alive = limits.keep_alive  # type: ignore[assignment]  # uvicorn's is whole seconds; call_later takes any
        self.book = book_of(server_state, limits.max_connections)
        self.refused = False
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.head_open = False  # a request has begun and its head is not complete
        self.head_chunk_bytes = 0
        self.head_parsed_bytes = 0
        self.reading_body = False
        self.body_started = 0.0
        self.body_received = 0
        self.pending_refusal: bytes | None = None

    # -- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        admitted, evicted = self.book.admit(self)
        if evicted is not None:
            evicted.transport.close()
        note_limit(self.limits.max_connections, evicted is not None, not admitted)
        if not admitted:
            self.refused = True
            self.transport = transport
            transport.write(self.raw_answer(503, Code.TRY_AGAIN_LATER, "too many connections", retry_after=1))
            transport.close()
            return
        super().connection_made(transport)
        self.arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refused:
            return
        self.book.closed(self)
        self.cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.pending_refusal is not None:
            return
        self._unset_keepalive_if_required()
        head_was_open = self.head_open
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self.refuse_head(exc.__context__)
            else:
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.head_open and head_was_open:
            # A header line is buffered by the parser until it ends: count what arrives.
            self.head_chunk_bytes += len(data)
            if self.head_chunk_bytes > self.limits.max_head_bytes:
                self.refuse_head(HeadTooLarge(431, f"request head over {self.limits.max_head_bytes} bytes"))
                return
        # Timers only for what this read left unfinished: a request that arrived whole,
        # the common case, arms none.
        if self.reading_body:
            self.body_received += len(data)
            if self.body_timer is None:
                self.body_timer = self.loop.call_at(self.body_started + self.limits.body_timeout, self.body_timeout_handler)
        elif self.head_timer is None and (self.head_open or not self.server_busy()):
            self.arm_head_timer()

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_open = True
        self.head_chunk_bytes = 0
        self.head_parsed_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_header_line_bytes:
            raise HeadTooLarge(414, f"request line over {self.limits.max_header_line_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        line = len(name) + len(value) + 4  # ": " and CRLF
        if line > self.limits.max_header_line_bytes:
            raise HeadTooLarge(431, f"a header line over {self.limits.max_header_line_bytes} bytes")
        self.head_parsed_bytes += line
        if len(self.url) + self.head_parsed_bytes > self.limits.max_head_bytes:
            raise HeadTooLarge(431, f"request head over {self.limits.max_head_bytes} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.head_open = False
        self.cancel_head_timer()
        self.book.head_received(self)
        self.reading_body = True
        self.body_started = self.loop.time()
        self.body_received = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.reading_body = False
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        super().on_message_complete()

    # -- timers ----------------------------------------------------------------------------

    def arm_head_timer(self) -> None:
        self.head_timer = self.loop.call_later(self.limits.head_timeout, self.head_timeout_handler)

    def cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def cancel_timers(self) -> None:
        self.cancel_head_timer()
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def server_busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def head_timeout_handler(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.server_busy():
            self.arm_head_timer()
            return
        if self.head_open:
            self.refuse(self.raw_answer(408, Code.UNSUPPORTED_REQUEST_TYPE, f"request head not received within {self.limits.head_timeout:g} s"))
        else:
            self.transport.close()

    def body_timeout_handler(self) -> None:
        self.body_timer = None
        if self.transport.is_closing():
            return
        deadline = self.body_started + self.limits.body_timeout + self.body_received / self.limits.body_min_rate
        remaining = deadline - self.loop.time()
        if self.flow.read_paused:
            # The application has not taken what arrived yet: not the client's delay.
            remaining = max(remaining, self.limits.body_timeout)
        if remaining > 0:
            self.body_timer = self.loop.call_later(remaining, self.body_timeout_handler)
            return
        # The application is reading this body: a closed connection is what it can be told.
        self.transport.close()

    # -- answers written by the protocol itself ----------------------------------------------

    def raw_answer(self, status: int, code: Code, detail: str, retry_after: int | None = None) -> bytes:
        """A complete HTTP/1.1 answer with the contract's bare body, closing the connection."""
        response = self.limits.responder.bare(code, detail, status, retry_after)
        lines = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *response.raw_headers, (b"connection", b"close")]:
            lines.append(name + b": " + value + b"\r\n")
        lines.append(b"\r\n")
        lines.append(bytes(response.body))
        return b"".join(lines)

    def refuse(self, answer: bytes) -> None:
        """Writes `answer` and closes; after the answers to earlier pipelined requests of the
        connection, if they are still being made, so that answers never interleave."""
        self.cancel_timers()
        if self.server_busy() or self.pipeline:
            self.pending_refusal = answer
            self.flow.pause_reading()
            return
        self.transport.write(answer)
        self.transport.close()

    def on_response_complete(self) -> None:
        if self.pending_refusal is None or self.pipeline:
            super().on_response_complete()
            if self.pending_refusal is not None:
                self.flow.pause_reading()
            return
        self.server_state.total_requests += 1
        self.transport.write(self.pending_refusal)
        self.transport.close()

    def refuse_head(self, exc: HeadTooLarge) -> None:
        self.refuse(self.raw_answer(exc.status, Code.UNSUPPORTED_REQUEST_TYPE, exc.detail))

    def send_400_response(self, _msg: str) -> None:
        self.refuse(self.raw_answer(400, Code.UNSUPPORTED_REQUEST_TYPE, "not a valid HTTP/1.1 request"))


_limit_log = LogThrottle()
_limit_counts = {"closed": 0, "refused": 0}


def note_limit(limit: int, evicted: bool, refused: bool) -> None:
    """One log line every few seconds while the connection limit is reached, with counts."""
    if not (evicted or refused):
        return
    _limit_counts["closed" if evicted else "refused"] += 1
    if _limit_log.admit(time.monotonic()) is None:
        return
    closed, refused_count = _limit_counts["closed"], _limit_counts["refused"]
    _limit_counts.update(closed=0, refused=0)
    log.warning(
        "HTTP connection limit SMSGW_HTTP_MAX_CONNECTIONS=%d reached: %d connections that had sent no request closed, %d new ones refused",
        limit,
        closed,
        refused_count,
    )


def raise_descriptor_limit(max_connections: int) -> None:
    """Lifts this process's soft descriptor limit (inherited by worker processes) towards its
    hard limit so that the connection limit is reached before the descriptors run out."""
    needed = max_connections + DESCRIPTOR_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "SMSGW_HTTP_MAX_CONNECTIONS=%d needs about %d file descriptors, the process may open %d (ulimit -n): "
            "new connections will fail before the limit is reached",
            max_connections,
            needed,
            soft,
        )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config / uvicorn.run options for the gateway's HTTP server (and the descriptor
    limit it needs)."""
    raise_descriptor_limit(settings.http_max_connections)
    return {
        # A partial, not a class: uvicorn accepts any callable here, and this one survives
        # the pickling that hands the options to worker processes.
        "http": functools.partial(LimitedHttpProtocol, limits=HttpLimits.from_settings(settings)),
        "loop": "smsgw.api.http:new_event_loop",
        # SMSGW_TRUSTED_PROXIES alone decides whom X-Forwarded-For is believed from (IP
        # allow-lists): uvicorn's own proxy handling would believe loopback peers.
        "proxy_headers": False,
    }
