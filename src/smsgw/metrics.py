"""Prometheus metrics: what the gateway counts as it works, and the scrape of `GET /metrics`.

The rest of the gateway calls one function of this module per event. Counters and
histograms live in prometheus_client's default registry; with several API worker processes
(`smsgw serve --workers N`) `serve` sets PROMETHEUS_MULTIPROC_DIR, every worker writes its
values there, and a scrape answered by any worker sums them all. Figures that the store
knows (queue depth, open receipts and callbacks, bind leases) are read at scrape time.

Labels are bounded: endpoint names, response codes, SMSC names, partner ids, states. Never a
message id, a number or a text.
"""

from __future__ import annotations

import contextvars
import operator
import os
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .domain.states import DeliveryState

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .connectors.base import SubmitOutcome
    from .store.figures import ScrapeFigures
    from .store.receipts import ReceiptOutcome

CONTENT_TYPE = CONTENT_TYPE_LATEST
ROUTE_STATES = ("up", "down", "probing")
PARTNER_ENDPOINTS = frozenset({"sendbulk", "sendsms", "sendotp", "getbalance", "getdlr"})
# Seconds: from 5 ms (the API, a fast carrier) to 2 days (the validity period of a message).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 48 * 3600)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("smsgw_http_requests", "HTTP requests answered, by endpoint and HTTP status.", ["endpoint", "status"])
REQUEST_SECONDS = Histogram(
    "smsgw_http_request_duration_seconds", "Time from request to the end of the answer, by endpoint.", ["endpoint"], buckets=_REQUEST_BUCKETS
)
REFUSED_REQUESTS = Counter(
    "smsgw_requests_refused", "Requests answered with a request-level error code (a bare answer), by endpoint and code.", ["endpoint", "code"]
)
MESSAGES = Counter(
    "smsgw_messages_answered",
    "Message entries answered by sendbulk, sendsms and sendotp, by endpoint and response code (200: accepted).",
    ["endpoint", "code"],
)
UNITS_CHARGED = Counter("smsgw_units_charged", "Credit units charged for accepted messages, by partner.", ["partner"])
SUBMITS = Counter(
    "smsgw_submit_sm", "submit_sm outcomes by SMSC and command_status (connector_error: no answer from the connection).", ["smsc", "command_status"]
)
ROUTES_OUT = Counter(
    "smsgw_route_failovers", "Times a route was taken out of the choice after submits to retry in a row (docs/routing.md).", ["route"]
)
REROUTED = Counter(
    "smsgw_messages_rerouted", "Messages a route refused for good that went to another route of their network, by refusing route.", ["route"]
)
ACCEPT_TO_SUBMIT = Histogram(
    "smsgw_accept_to_submit_seconds",
    "From acceptance (a scheduled message: from its acceptance too) to the carrier's submit_sm_resp, by SMSC.",
    ["smsc"],
    buckets=_LATENCY_BUCKETS,
)
SUBMIT_TO_FINAL = Histogram("smsgw_submit_to_final_seconds", "From submit_sm to the receipt that made the message final.", buckets=_LATENCY_BUCKETS)
RECEIPTS = Counter(
    "smsgw_receipts",
    "Delivery receipts recorded, by SMSC, state and match (matched, unmatched, rematched: matched later).",
    ["smsc", "state", "match"],
)
CALLBACK_ATTEMPTS = Counter("smsgw_callback_attempts", "Delivery report POSTs to partners' callback URLs, by outcome.", ["outcome"])

SMPP_BINDS = Gauge(
    "smsgw_smpp_server_binds",
    "Binds open on the partner SMPP server, by SMPP account and bind type (transmitter, receiver, transceiver).",
    ["account", "bind_type"],
    multiprocess_mode="livesum",
)
SMPP_SUBMITS = Counter(
    "smsgw_smpp_server_submit_sm",
    "submit_sm answered by the partner SMPP server, by SMPP account and result (accepted, or the refusing command_status).",
    ["account", "result"],
)
SMPP_THROTTLED = Counter(
    "smsgw_smpp_server_throttled",
    "submit_sm answered ESME_RTHROTTLED, by SMPP account and reason (window, rate: the account's TPS, partner_limit: the partner's rate limit).",
    ["account", "reason"],
)
SMPP_DELIVER_SM = Counter(
    "smsgw_smpp_server_deliver_sm",
    "deliver_sm to partners' ESMEs, by kind (receipt, inbound) and outcome (sent: answered ESME_ROK; retried: not taken, sent again later).",
    ["kind", "outcome"],
)

_RESPONSE_CODE = operator.itemgetter("response-code")
_endpoint: contextvars.ContextVar[str] = contextvars.ContextVar("smsgw_endpoint", default="other")


def endpoint_of(path: str) -> str:
    """The bounded endpoint label of a request path."""
    parts = [p for p in path.split("/") if p]
    if len(parts) == 3 and parts[:2] == ["api", "services"] and parts[2] in PARTNER_ENDPOINTS:
        return parts[2]
    if parts[:2] == ["api", "admin"]:
        return "admin"
    if parts and parts[0] in ("health", "metrics"):
        return parts[0]
    return "other"


def command_status_label(status: int | None) -> str:
    # command_status is 32 bits wide; standard and vendor-reserved values keep their own label.
    if status is None or status < 0:
        return "connector_error"
    if status <= 0x4FF:
        return f"{status:#010x}"
    return "other"


# -- events ----------------------------------------------------------------------------------


def request_refused(code: int) -> None:
    REFUSED_REQUESTS.labels(_endpoint.get(), str(code)).inc()


def messages_answered(responses: list[dict[str, Any]]) -> None:
    endpoint = _endpoint.get()
    for code, count in Tally(map(_RESPONSE_CODE, responses)).items():
        MESSAGES.labels(endpoint, str(code)).inc(count)


def units_charged(partner_id: str, cost_hundredths: int) -> None:
    UNITS_CHARGED.labels(partner_id).inc(cost_hundredths / 100)


def submitted(smsc: str, outcome: SubmitOutcome, accepted_at_ms: int) -> None:
    SUBMITS.labels(smsc, command_status_label(outcome.code)).inc()
    if outcome.ok:
        ACCEPT_TO_SUBMIT.labels(smsc).observe(max(0.0, time.time() - accepted_at_ms / 1000))


def receipts_recorded(outcome: ReceiptOutcome) -> None:
    for (smsc, state, match), count in outcome.receipts.items():
        RECEIPTS.labels(smsc, _state_name(state), match).inc(count)
    for ms in outcome.submit_to_final_ms:
        SUBMIT_TO_FINAL.observe(max(0, ms) / 1000)


def callback_attempts(errors: Iterable[str | None]) -> None:
    """The results of a round of callback POSTs: None for a 2xx, else what went wrong."""
    for error in errors:
        if error is None:
            outcome = "delivered"
        elif error.startswith("HTTP "):
            outcome = "http_error"
        elif error.startswith("no answer"):
            outcome = "timeout"
        else:
            outcome = "connection_error"
        CALLBACK_ATTEMPTS.labels(outcome).inc()


def smpp_bind_changed(account: str, bind_type: str, change: int) -> None:
    SMPP_BINDS.labels(account, bind_type).inc(change)


def smpp_submit_answered(account: str, command_status: int, count: int = 1) -> None:
    SMPP_SUBMITS.labels(account, "accepted" if command_status == 0 else command_status_label(command_status)).inc(count)


def smpp_throttled(account: str, reason: str) -> None:
    SMPP_THROTTLED.labels(account, reason).inc()


def smpp_deliver_sm(kind: str, taken: bool) -> None:
    SMPP_DELIVER_SM.labels(kind, "sent" if taken else "retried").inc()


def _state_name(state: int) -> str:
    try:
        return DeliveryState(state).description
    except ValueError:
        return "other"


# -- HTTP ------------------------------------------------------------------------------------


class RequestMetrics:
    """ASGI middleware: request count and latency by endpoint, and the endpoint for the
    events counted while the request runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope["path"])
        token = _endpoint.set(endpoint)
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _endpoint.reset(token)
            REQUESTS.labels(endpoint, str(status)).inc()
            REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)


# -- the scrape ------------------------------------------------------------------------------


class _Figures(Collector):
    """The figures of one scrape, read from the store (and this process's binds) just before."""

    def __init__(self, figures: ScrapeFigures | None, bound: dict[str, bool] | None, routes: dict[str, str] | None = None) -> None:
        self.figures = figures
        self.bound = bound
        self.routes = routes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("smsgw_store_up", "1 when the store answered this scrape.")
        up.add_metric([], 1 if self.figures is not None else 0)
        yield up
        if self.figures is not None:
            queue = GaugeMetricFamily(
                "smsgw_queue_messages", "Messages not yet final, by state and priority (counted up to 1,000,000).", labels=["state", "priority"]
            )
            for (state, priority), count in sorted(self.figures.queue.items()):
                queue.add_metric([state, priority], count)
            yield queue
            yield GaugeMetricFamily("smsgw_unmatched_receipts", "Receipts that matched no message yet.", value=self.figures.unmatched_receipts)
            yield GaugeMetricFamily(
                "smsgw_callbacks_pending", "Delivery reports not yet taken by the partner's callback URL (2xx).", value=self.figures.callbacks_pending
            )
            owed = GaugeMetricFamily(
                "smsgw_smpp_server_deliver_sm_pending",
                "deliver_sm owed to partners' ESMEs and not yet taken, by kind: receipts (of messages final or not yet) and inbound messages.",
                labels=["kind"],
            )
            owed.add_metric(["receipt"], self.figures.smpp_receipts_pending)
            owed.add_metric(["inbound"], self.figures.smpp_inbound_pending)
            yield owed
            leases = GaugeMetricFamily("smsgw_smsc_bind_leased", "1 when a live dispatcher holds the SMSC's bind lease.", labels=["smsc"])
            for name, held in sorted(self.figures.bind_leases.items()):
                leases.add_metric([name], 1 if held else 0)
            yield leases
        if self.bound is not None:
            bound = GaugeMetricFamily("smsgw_smsc_bound", "1 when this process's connection to the SMSC is bound.", labels=["smsc"])
            for name, is_bound in sorted(self.bound.items()):
                bound.add_metric([name], 1 if is_bound else 0)
            yield bound
        if self.routes is not None:
            routes = GaugeMetricFamily(
                "smsgw_route_state",
                "1 for the state each route of this process is in: up, down or probing (docs/routing.md).",
                labels=["route", "state"],
            )
            for name, state in sorted(self.routes.items()):
                for each in ROUTE_STATES:
                    routes.add_metric([name, each], 1 if each == state else 0)
            yield routes


def render(figures: ScrapeFigures | None, bound: dict[str, bool] | None, routes: dict[str, str] | None = None) -> bytes:
    """The text of one scrape: every process's counters, then the figures read for it."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Figures(figures, bound, routes))
    return generate_latest(counted) + generate_latest(scraped)
