"""`smsgw serve`: the API (and, in the embedded default, everything else) in one process."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import signal
import socket
import tempfile

import click
import orjson
import uvicorn

from ..api.acceptance import Acceptance
from ..api.app import ROUTED_NETWORKS_ENV, UPSTREAM_SECRETS_ENV, WORKER_LOG_LEVEL_ENV, create_app
from ..api.auto_reply import AutoReplies
from ..api.http import install_accept_error_throttle, server_options
from ..api.operations import operations_app
from ..config import Settings
from ..dispatch.routing import RouteError
from ..dispatch.runtime import DeliveryPlan, run_delivery
from ..domain.apikeys import generate_api_key
from ..domain.money import format_units
from ..logs import configure_logging
from ..smpp_server.server import partner_smpp_server
from ..store.errors import SchemaOutOfDate, StoreUnavailable
from ..store.store import Store, open_store
from .common import fail, load_settings

log = logging.getLogger("smsgw")

DEMO_PARTNER = "demo"
DEMO_SHORTCODE = "SMSGW"
DEMO_CREDITS = 1000_00


DEFAULT_PORT = 8000


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Port to listen on (default 8000). With --role dispatcher: only when given, a port for /metrics and /health/*.",
)
@click.option(
    "--smsc",
    "smsc_urls",
    multiple=True,
    metavar="URL",
    help="smpp://SYSTEM_ID:PASSWORD@HOST:PORT?window=64&tps=500&networks=1,2 (repeat for several "
    "carriers); without it the built-in simulated carrier is used.",
)
@click.option(
    "--role",
    default="all",
    show_default=True,
    type=click.Choice(["all", "api", "dispatcher"]),
    help="all: API and delivery in this process; api: only the partner API; dispatcher: only delivery.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="API worker processes (with --role api; run dispatchers as their own processes).",
)
@click.option("--smpp-port", default=None, type=click.IntRange(0, 65535), help="Also serve partners' ESMEs on this port (the partner SMPP server).")
@click.option("--smpp-host", default=None, help="Address the partner SMPP server listens on (default: --host).")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def serve(
    host: str, port: int | None, smsc_urls: tuple[str, ...], role: str, workers: int, smpp_port: int | None, smpp_host: str | None, log_level: str
) -> None:
    """Run the partner API and delivery.

    On first start with an empty embedded database, a demo partner and shortcode are created
    and printed with a ready-to-paste curl command.
    """
    settings = load_settings()
    configure_logging(log_level, settings.log_format)
    if port is None and role != "dispatcher":
        port = DEFAULT_PORT
    if port is not None:
        ensure_can_listen(host, port)
    smpp_listen = (smpp_host or host, smpp_port) if smpp_port is not None else None
    if smpp_listen is not None:
        if role == "dispatcher":
            raise click.BadParameter("the partner SMPP server runs with the API (--role all or api)", param_hint="--smpp-port")
        if workers > 1:
            raise click.BadParameter(
                "the partner SMPP server runs in a single API process: run several `smsgw serve --role api` instead", param_hint="--smpp-port"
            )
        ensure_can_listen(*smpp_listen)
    try:
        plan = DeliveryPlan.from_urls(list(smsc_urls), settings)
    except RouteError as exc:
        raise click.BadParameter(str(exc), param_hint="--smsc") from None
    if workers > 1:
        if role != "api":
            raise click.BadParameter(
                "several workers serve the API only: use --role api, and run dispatchers with --role dispatcher", param_hint="--workers"
            )
        assert port is not None
        run_api_workers(settings, plan, host, port, workers, log_level)
        return
    try:
        asyncio.run(run_server(settings, plan, host, port, log_level, role, smpp_listen))
    except StoreUnavailable as exc:
        fail(f"the database at {settings.database_url.display} is unavailable: {exc}")
    except SchemaOutOfDate as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


async def run_server(
    settings: Settings, plan: DeliveryPlan, host: str, port: int | None, log_level: str, role: str, smpp_listen: tuple[str, int] | None = None
) -> None:
    store = open_store(settings)
    try:
        await store.prepare()
        if role == "dispatcher":
            await run_dispatcher_only(store, settings, plan, host, port, log_level)
            return
        assert port is not None
        if role == "all" and store.is_sqlite and await store.count_partners() == 0:
            await create_demo(store, settings, host, port)
        elif role == "all" and await store.get_partner(DEMO_PARTNER) is not None:
            click.echo(
                f"Partner {DEMO_PARTNER} exists; its API key was shown on the first start only: `smsgw partner rotate-key {DEMO_PARTNER}` prints a new one."
            )

        def delivery(active: Store):
            return run_delivery(active, settings, plan, auto_reply=auto_replies(settings, active, plan))

        def smpp_server(acceptance: Acceptance):
            assert smpp_listen is not None
            return partner_smpp_server(settings, acceptance, *smpp_listen)

        app = create_app(
            settings,
            store=store,
            routed_networks=plan.routed_networks(settings),
            upstream_secrets=plan.upstream_secrets(),
            delivery=delivery if role == "all" else None,
            alongside=smpp_server if smpp_listen is not None else None,
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            **server_options(settings),
        )
        server = uvicorn.Server(config)
        install_accept_error_throttle(asyncio.get_running_loop())
        carrier = "the built-in simulated carrier" if plan.simulated else ", ".join(c.display for c in plan.connectors)
        what = "API and delivery via " + carrier if role == "all" else "API only"
        click.echo(f"smsgw listening on http://{host}:{port} ({what}; store {settings.database_url.display}); API docs at /docs")
        if smpp_listen is not None:
            tls = " with TLS" if settings.smpp_tls_cert_file else ""
            click.echo(f"partner SMPP server on {smpp_listen[0]}:{smpp_listen[1]}{tls}")
        await server.serve()
    finally:
        await store.close()


def run_api_workers(settings: Settings, plan: DeliveryPlan, host: str, port: int, workers: int, log_level: str) -> None:
    """Several API processes on one port (uvicorn's process manager); each opens the store
    itself from the environment."""

    async def check_store() -> None:
        store = open_store(settings)
        try:
            await store.prepare()
        finally:
            await store.close()

    try:
        asyncio.run(check_store())
    except StoreUnavailable as exc:
        fail(f"the database at {settings.database_url.display} is unavailable: {exc}")
    except SchemaOutOfDate as exc:
        fail(str(exc))
    os.environ[ROUTED_NETWORKS_ENV] = ",".join(str(n) for n in sorted(plan.routed_networks(settings)))
    os.environ[WORKER_LOG_LEVEL_ENV] = log_level
    os.environ[UPSTREAM_SECRETS_ENV] = orjson.dumps(plan.upstream_secrets()).decode()
    # Every worker writes its counters here, so that one scrape of /metrics sums them all.
    metrics_dir = tempfile.mkdtemp(prefix="smsgw-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    click.echo(f"smsgw listening on http://{host}:{port} (API only, {workers} workers; store {settings.database_url.display}); API docs at /docs")
    try:
        uvicorn.run(
            "smsgw.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_worker_healthcheck=settings.worker_healthcheck_seconds,
            log_level=log_level,
            log_config=None,
            access_log=False,
            server_header=False,
            **server_options(settings),
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def ensure_can_listen(host: str, port: int) -> None:
    """Fails before the store is touched (no database, no demo key) when the address is
    taken or cannot be had, rather than after."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another smsgw or another server running there? choose another --port)")


async def run_dispatcher_only(store: Store, settings: Settings, plan: DeliveryPlan, host: str, port: int | None, log_level: str) -> None:
    """Delivery alone; with a port, its /metrics and /health/* are served there (a dispatcher's
    counters live in its own process)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with run_delivery(store, settings, plan, auto_reply=auto_replies(settings, store, plan)) as dispatcher:
        carrier = "the built-in simulated carrier" if plan.simulated else ", ".join(c.display for c in plan.connectors)
        server = None
        if port is not None:
            app = operations_app(settings, store, dispatcher)
            server = uvicorn.Server(
                uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None, access_log=False, lifespan="off", server_header=False)
            )
            serving = asyncio.create_task(server.serve())
        listening = f"; /metrics and /health/* on http://{host}:{port}" if port is not None else ""
        click.echo(f"smsgw dispatcher {dispatcher.owner} delivering via {carrier} (store {settings.database_url.display}){listening}")
        await stop.wait()
        if server is not None:
            server.should_exit = True
            await serving


def auto_replies(settings: Settings, store: Store, plan: DeliveryPlan) -> AutoReplies:
    """Partners' answers to inbound messages, accepted like their other messages."""
    return AutoReplies(Acceptance(settings, store, plan.routed_networks(settings)))


async def create_demo(store: Store, settings: Settings, host: str, port: int) -> None:
    key = generate_api_key()
    hasher = await store.api_key_hasher(settings.api_key_secret)
    await store.create_partner(DEMO_PARTNER, "Demo partner", hasher.hash(key), DEMO_CREDITS)
    await store.add_shortcode(DEMO_SHORTCODE, DEMO_PARTNER, None)
    body = {
        "count": 1,
        "smslist": [
            {
                "partnerID": DEMO_PARTNER,
                "apikey": key,
                "pass_type": "plain",
                "clientsmsid": 1,
                "mobile": "0712345678",
                "message": "Hello from smsgw",
                "shortcode": DEMO_SHORTCODE,
            }
        ],
    }
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}/api/services/sendbulk"
    click.echo("")
    click.echo("First start on an empty database: created a demo partner.")
    click.echo(f"  partnerID: {DEMO_PARTNER}")
    click.echo(f"  apikey:    {key}   (shown once; `smsgw partner rotate-key {DEMO_PARTNER}` makes a new one)")
    click.echo(f"  shortcode: {DEMO_SHORTCODE}")
    click.echo(f"  credit:    {format_units(DEMO_CREDITS)} units")
    report = {"partnerID": DEMO_PARTNER, "apikey": key, "messageID": "MESSAGEID"}
    click.echo("Send a message:")
    click.echo(f"  curl -s {url} -H 'Content-Type: application/json' -d {shlex.quote(orjson.dumps(body).decode())}")
    click.echo("Then its delivery report (put the messageid of the answer in):")
    click.echo(f"  curl -s {url.replace('sendbulk', 'getdlr')} -H 'Content-Type: application/json' -d {shlex.quote(orjson.dumps(report).decode())}")
    click.echo("")
