"""`smsgw smsc-sim`: run the SMPP 3.4 SMSC simulator (smsgw.connectors.smpp.simulator)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from ..connectors.smpp import inbound_feed
from ..connectors.smpp.simulator import BEHAVIOUR_NAMES, SmscSimulator


@click.command("smsc-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=2775, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on (0: any free port).")
@click.option("--system-id", default=None, help="Accept only binds with this system_id (default: any).")
@click.option("--password", default=None, help="Accept only binds with this password (default: any).")
@click.option(
    "--behaviour",
    default="happy",
    show_default=True,
    type=click.Choice(BEHAVIOUR_NAMES),
    help="What every submit_sm gets, whatever the number (see --test-numbers).",
)
@click.option("--receipt-delay", default=None, type=click.FloatRange(0), help="Seconds before a receipt (default: 0; 2 for --behaviour delayed).")
@click.option(
    "--id-format", default="hex", show_default=True, type=click.Choice(["hex", "decimal"]), help="Format of the message ids in submit_sm_resp."
)
@click.option(
    "--receipt-id-format",
    default="same",
    show_default=True,
    type=click.Choice(["same", "other"]),
    help="Write receipt ids in the same or the other format.",
)
@click.option("--tps", default=0.0, type=click.FloatRange(0), help="With --behaviour throttle/queuefull: refuse above this rate.")
@click.option("--every", default=0, type=click.IntRange(0), help="With --behaviour throttle/queuefull: refuse every Nth submit instead.")
@click.option(
    "--drop-after",
    default=100,
    show_default=True,
    type=click.IntRange(0),
    help="With --behaviour drop: answered submits per connection before dropping it.",
)
@click.option(
    "--test-numbers",
    is_flag=True,
    help="Let reserved test numbers pick a fault: numbers ending in 0001..0009 get undeliverable, rejected, delayed, "
    "expired, throttled, queue full, no response, dropped connection, receipt first (docs/configuration.md).",
)
@click.option(
    "--inbound-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Follow this file (like tail -f): each line 'FROM TO TEXT' is sent to the bound gateway as a subscriber's message.",
)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def smsc_sim(
    host: str,
    port: int,
    system_id: str | None,
    password: str | None,
    behaviour: str,
    receipt_delay: float | None,
    id_format: str,
    receipt_id_format: str,
    tps: float,
    every: int,
    drop_after: int,
    test_numbers: bool,
    inbound_file: Path | None,
    log_level: str,
) -> None:
    """SMPP 3.4 SMSC simulator for tests and benchmarks; runs until Ctrl-C or SIGTERM."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    simulator = SmscSimulator(
        system_id=system_id,
        password=password,
        behaviour=behaviour,
        id_format=id_format,
        receipt_id_format=receipt_id_format,
        receipt_delay=receipt_delay if receipt_delay is not None else (2.0 if behaviour == "delayed" else 0.0),
        throttle_tps=tps,
        throttle_every=every,
        drop_after=drop_after,
        test_numbers=test_numbers,
    )
    try:
        asyncio.run(_serve(simulator, host, port, inbound_file))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc}", err=True)
        raise SystemExit(1) from None


async def _serve(simulator: SmscSimulator, host: str, port: int, inbound_file: Path | None = None) -> None:
    bound_port = await simulator.start(host, port)
    feed = asyncio.create_task(inbound_feed.follow(simulator, inbound_file)) if inbound_file is not None else None
    credentials = f"system_id {simulator.system_id!r}" if simulator.system_id is not None else "any credentials"
    click.echo(f"SMSC simulator listening on {host}:{bound_port} ({credentials}); Ctrl-C to stop", err=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # not on the main thread or not supported: Ctrl-C still raises KeyboardInterrupt
    try:
        await stop.wait()
    finally:
        if feed is not None:
            feed.cancel()
        await simulator.stop()
        click.echo(f"stopped: {simulator.submits} submit_sm, {simulator.receipts_acked} receipts acknowledged, {simulator.binds} binds")
