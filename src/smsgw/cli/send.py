"""`smsgw send`, `smsgw balance`, `smsgw dlr`: the client side of the partner API.

These commands talk to a gateway over HTTP (smsgw or another provider of the same API) and
never open a store. Connection settings come from flags or SMSGW_URL, SMSGW_PARTNER_ID,
SMSGW_API_KEY, SMSGW_SHORTCODE; the API key is never printed or logged.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..client import Client, RetryEvent, RetryPolicy, SmsgwError
from ..client.campaign import (
    CampaignError,
    CsvSource,
    Estimate,
    ResultsLog,
    ResumeState,
    RowBuilder,
    RowState,
    RunFile,
    Tally,
    estimate,
    key_deriver,
    plan,
)
from ..config import ConfigError, load_network_table
from ..domain.money import format_units

ENV_HELP = "environment variable"


def connection_options(*, shortcode: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--url, --partner-id, --api-key (and --shortcode), each with its SMSGW_* variable."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--url", envvar="SMSGW_URL", show_envvar=True, help="Base URL of the gateway, e.g. https://sms.example.com."),
            click.option("--partner-id", envvar="SMSGW_PARTNER_ID", show_envvar=True, help="Your partner id."),
            click.option(
                "--api-key",
                envvar="SMSGW_API_KEY",
                show_envvar=True,
                help="Your API key. Prefer the environment variable: a flag is visible to other users in the process list.",
            ),
        ]
        if shortcode:
            options.append(
                click.option("--shortcode", envvar="SMSGW_SHORTCODE", show_envvar=True, help="Sender id (shortcode) the messages go out with.")
            )
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def require(values: dict[str, str | None]) -> None:
    """Exits with a usage error naming the flag and the variable of each missing setting."""
    missing = [name for name, value in values.items() if not value]
    if missing:
        described = ", ".join(f"--{name} (or SMSGW_{name.upper().replace('-', '_')})" for name in missing)
        raise click.UsageError(f"missing {described}")


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


# -- balance, dlr -----------------------------------------------------------------------------------


@click.command("balance")
@connection_options(shortcode=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0.1), help="Seconds to wait for an answer.")
def balance_command(url: str | None, partner_id: str | None, api_key: str | None, as_json: bool, timeout: float) -> None:
    """Credit balance of the partner account."""
    require({"url": url, "partner-id": partner_id, "api-key": api_key})
    assert url and partner_id and api_key
    try:
        with Client(url, partner_id, api_key, timeout=timeout) as client:
            found = client.balance()
    except SmsgwError as exc:
        fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps({"partner_id": found.partner_id or partner_id, "credit": str(found.credit)}))
    else:
        click.echo(f"partner {found.partner_id or partner_id}: credit {found.credit}")


@click.command("dlr")
@click.argument("message_id")
@connection_options(shortcode=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0.1), help="Seconds to wait for an answer.")
def dlr_command(message_id: str, url: str | None, partner_id: str | None, api_key: str | None, as_json: bool, timeout: float) -> None:
    """Delivery report of one message, by the message id the gateway gave it."""
    require({"url": url, "partner-id": partner_id, "api-key": api_key})
    assert url and partner_id and api_key
    try:
        with Client(url, partner_id, api_key, timeout=timeout) as client:
            report = client.delivery_report(message_id)
    except SmsgwError as exc:
        fail(str(exc))
        return
    if as_json:
        data = asdict(report)
        data.pop("raw", None)
        click.echo(json.dumps(data))
        return
    click.echo(f"message {report.message_id}: {report.description} (status {report.status})")
    details = []
    if report.network_id is not None:
        details.append(f"network {report.network_id}")
    if report.time:
        details.append(f"since {report.time}")
    if report.tat:
        details.append(f"{report.tat} after acceptance")
    if details:
        click.echo("  " + ", ".join(details))


# -- send -----------------------------------------------------------------------------------------------


class RateColumn(ProgressColumn):
    """Messages per second, as rich measures it over the last moments."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("-- msg/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} msg/s", style="progress.data.speed")


class StopSignal:
    """First Ctrl-C (or SIGTERM): finish the requests in flight, record them, stop.
    Second: quit at once, without waiting for answers; `before_exit` saves what was
    recorded. The requests left unanswered are sent again by --resume with the same
    Idempotency-Keys."""

    def __init__(self, console: Console, before_exit: Callable[[], None]) -> None:
        self.event = threading.Event()
        self.reason: str | None = None
        self.console = console
        self.before_exit = before_exit
        self.signals = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, _signum: int, _frame: Any) -> None:
        self.signals += 1
        if self.signals > 1:
            # Waiting for the threads would mean waiting for the answers (up to --timeout).
            self.before_exit()
            self.console.print("[red]quit; run again with --resume[/]")
            os._exit(130)
        self.stop("interrupted")
        self.console.print("[yellow]stopping: recording the answers of the requests in flight (Ctrl-C again to quit without them)[/]")

    def stop(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@click.command("send")
@connection_options(shortcode=True)
@click.option(
    "--csv", "csv_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The campaign: a header line, then one row per message."
)
@click.option(
    "--message", "message_template", default=None, help='Message template filled from the row\'s columns: "Dear {name}, your bill is {amount}."'
)
@click.option("--message-column", default=None, help="Column holding each row's message (default: a column named message, text, sms or body).")
@click.option("--mobile-column", default=None, help="Column holding the number (default: a column named mobile, msisdn, phone, number ...).")
@click.option("--clientsmsid-column", default=None, help="Column sent as clientsmsid (default: the row's line number in the CSV).")
@click.option("--time-to-send", default=None, help='Schedule every message: Unix seconds or "YYYY-MM-DD HH:MM" in the gateway\'s time zone.')
@click.option(
    "--results", "results_path", default=None, type=click.Path(dir_okay=False, path_type=Path), help="Results CSV (default: CSV name + .results.csv)."
)
@click.option("--resume", is_flag=True, help="Continue the run recorded in the results file: rows already done are skipped.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Send nothing: show messages, parts and estimated cost per network, the bad rows, and (with the connection settings) the opted-out numbers and a promotional shortcode's footer.",
)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 1000), help="Messages per request.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64), help="Requests in flight at once.")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(0.1), help="Seconds to wait for one answer.")
@click.option(
    "--max-attempts", default=6, show_default=True, type=click.IntRange(1, 100), help="Tries per request (4090, 429/502/503/504, connection errors)."
)
@click.option(
    "--retry-delay", default=0.5, show_default=True, type=click.FloatRange(0), help="First wait before a retry, in seconds; it doubles up to 30 s."
)
@click.option("--encoding", default="utf-8-sig", show_default=True, help="Text encoding of the CSV.")
@click.option("--delimiter", default=None, help="Field separator of the CSV (default: guessed from the header: , ; tab |).")
@click.option("--progress/--no-progress", "show_progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def send_command(
    url: str | None,
    partner_id: str | None,
    api_key: str | None,
    shortcode: str | None,
    csv_path: Path,
    message_template: str | None,
    message_column: str | None,
    mobile_column: str | None,
    clientsmsid_column: str | None,
    time_to_send: str | None,
    results_path: Path | None,
    resume: bool,
    dry_run: bool,
    batch_size: int,
    concurrency: int,
    timeout: float,
    max_attempts: int,
    retry_delay: float,
    encoding: str,
    delimiter: str | None,
    show_progress: bool | None,
) -> None:
    """Send a campaign from a CSV file, with a progress bar and a results file.

    \b
    smsgw send --csv customers.csv --message "Dear {name}, your bill is {amount}."
    smsgw send --csv customers.csv --dry-run        # parts and cost per network
    smsgw send --csv customers.csv --resume         # after an interruption

    Each row's result (message id, code, description) is appended to the results file as
    answers arrive. Bad rows (missing number or field) are listed with their line numbers
    and never stop the others. Exit status: 0 when every row has a final result, 1 when rows
    are left for --resume (the run stopped, or rows got 1004/1005), 2 for a usage error.
    """
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False)
    try:
        source = CsvSource(csv_path, encoding=encoding, delimiter=delimiter)
        builder = RowBuilder.create(
            source,
            mobile_column=mobile_column,
            message_template=message_template,
            message_column=message_column,
            clientsmsid_column=clientsmsid_column,
            time_to_send=time_to_send,
        )
    except CampaignError as exc:
        raise click.UsageError(str(exc)) from None
    results_path = results_path or csv_path.with_name(csv_path.stem + ".results.csv")
    if results_path.resolve() == csv_path.resolve():
        raise click.UsageError("--results must not be the campaign CSV itself")
    progress_on = err.is_terminal if show_progress is None else show_progress

    if dry_run:
        connection = {"url": url, "partner-id": partner_id, "api-key": api_key, "shortcode": shortcode}
        checker = None
        if any(connection.values()):  # asked with the connection settings: the gateway knows the opt-outs
            require(connection)
            assert url and partner_id and api_key and shortcode
            try:
                checker = Client(
                    url, partner_id, api_key, shortcode, timeout=timeout, retry=RetryPolicy(max_attempts=max_attempts, base_delay=retry_delay)
                )
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
        try:
            run_dry(source, builder, results_path if resume else None, out, err, checker)
        finally:
            if checker is not None:
                checker.close()
        return

    require({"url": url, "partner-id": partner_id, "api-key": api_key, "shortcode": shortcode})
    assert url and partner_id and api_key and shortcode

    def on_retry(event: RetryEvent) -> None:
        err.print(
            f"[yellow]{event.endpoint}: attempt {event.attempt}/{event.max_attempts} failed ({event.error}); retrying in {event.delay:.1f} s[/]"
        )

    try:
        client = Client(
            url,
            partner_id,
            api_key,
            shortcode,
            concurrency=concurrency,
            batch_size=batch_size,
            timeout=timeout,
            retry=RetryPolicy(max_attempts=max_attempts, base_delay=retry_delay),
            on_retry=on_retry,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        total = source.count()
        log, state = ResultsLog.open(results_path, source.header, resume=resume)
    except CampaignError as exc:
        client.close()
        raise click.UsageError(str(exc)) from None
    # Everything that shapes the bytes of a request: a resumed run must use the same, or it
    # cannot rebuild the requests whose answers were lost (their keys would differ).
    request_shape = {
        "partner_id": partner_id,
        "shortcode": shortcode,
        "batch_size": batch_size,
        "message": message_template,
        "message_column": message_column,
        "mobile_column": mobile_column,
        "clientsmsid_column": clientsmsid_column,
        "time_to_send": time_to_send,
    }
    run_file = RunFile(results_path)
    earlier = run_file.load() if resume else None
    if earlier is None:
        if resume and state.recorded_lines:
            err.print(
                f"[yellow]warning: {run_file.path.name} is missing: requests that were in flight when the earlier run "
                "stopped cannot be recognised by the gateway and may be sent twice[/]"
            )
        earlier = run_file.create(csv_path, request_shape)
    else:
        changed = sorted(name for name, value in request_shape.items() if name in earlier["options"] and earlier["options"][name] != value)
        if changed:
            log.close()
            client.close()
            raise click.UsageError(
                f"--resume with other options than the earlier run ({', '.join(changed)}): its requests could not be "
                f"recognised and rows whose answers were lost would be sent twice; use the earlier values (see {run_file.path.name}), "
                f"or delete that file to resume without that protection"
            )
    nonce = earlier["nonce"]
    already_done = state.count(RowState.DONE)
    if resume and state.recorded_lines:
        err.print(f"resuming: {already_done:,} of {total:,} rows already done according to {results_path}")
    if state.ignored_records:
        err.print(f"[yellow]warning: {state.ignored_records} unreadable records in {results_path} were ignored[/]")

    tally = Tally(records=total)
    stopper = StopSignal(err, before_exit=log.close)
    first_error: SmsgwError | None = None
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]sending[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        disable=not progress_on,
        transient=False,
    )

    try:
        with client, stopper, progress:
            task = progress.add_task("send", total=total, completed=already_done)
            batches = plan(source.records(), builder, state, batch_size, stop=stopper.is_set)
            for outcome in client.iter_send_batches(batches, derive_key=key_deriver(nonce)):
                chunk = outcome.batch.context
                if outcome.error is not None:
                    # Its rows stay without a result: --resume sends them again, with the
                    # same key, so a request that did arrive is not sent twice.
                    if first_error is None:
                        first_error = outcome.error
                        stopper.stop(f"stopped by {outcome.error}")
                    continue
                log.write(tally.rows_of(outcome))
                progress.advance(task, chunk.records - chunk.already_done)
    except KeyboardInterrupt:
        stopper.stop("interrupted")
    except CampaignError as exc:
        stopper.stop(str(exc))
    finally:
        log.close()

    elapsed = time.monotonic() - started
    print_summary(out, tally, elapsed, results_path, stopper.reason)
    if first_error is not None:
        err.print(f"[red]error: {first_error}[/]")
    left = total - tally.processed
    if first_error is not None or left > 0:
        err.print(f"stopped with {left:,} rows not sent; run the same command with --resume to continue")
        sys.exit(1)
    if tally.retryable:
        err.print(
            f"{tally.retryable:,} rows were refused for a reason that may pass (low credit, system error); run the same command with --resume to send them again"
        )
        sys.exit(1)


def print_summary(out: Console, tally: Tally, elapsed: float, results_path: Path, stopped: str | None) -> None:
    table = Table(title="smsgw send: summary", title_justify="left")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("accepted (200)", f"{tally.accepted:,}")
    for (code, description), count in sorted(tally.refused.items()):
        table.add_row(f"refused {code} {description}", f"{count:,}")
    if tally.bad:
        table.add_row("bad rows, not sent", f"{tally.bad:,}")
    if tally.still_bad:
        table.add_row("bad rows (recorded by an earlier run)", f"{tally.still_bad:,}")
    if tally.already_done:
        table.add_row("done by an earlier run, skipped", f"{tally.already_done:,}")
    left = tally.records - tally.processed
    if left:
        table.add_row("not sent (run stopped)", f"{left:,}")
    table.add_row("total rows", f"{tally.records:,}", style="bold")
    out.print(table)
    sent = tally.accepted + sum(tally.refused.values())
    rate = sent / elapsed if elapsed > 0 else 0.0
    out.print(f"{tally.requests:,} requests, {sent:,} rows answered in {elapsed:.1f} s ({rate:,.0f} rows/s); results in {results_path}")
    print_problems(out, tally)
    if stopped:
        out.print(f"run {stopped}")


def print_problems(out: Console, tally: Tally) -> None:
    if not tally.problem_count:
        return
    out.print(f"rows not accepted ({tally.problem_count:,}):")
    for line, text in tally.problems:
        out.print(f"  line {line}: {text}")
    if tally.problem_count > len(tally.problems):
        out.print(f"  ... and {tally.problem_count - len(tally.problems):,} more (see the results file)")


def run_dry(source: CsvSource, builder: RowBuilder, resume_from: Path | None, out: Console, err: Console, client: Client | None) -> None:
    """--dry-run: no message sent, no results file; what the local network table says, and,
    with `client`, which numbers the gateway would refuse as opted out."""
    try:
        table = load_network_table(os.environ.get("SMSGW_NETWORKS_FILE"))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    state = _resume_state_for_dry_run(resume_from, source)
    try:
        try:
            found = estimate(source.records(), builder, table, state, opted_out=client.check_optout if client is not None else None)
        except SmsgwError as exc:
            if exc.http_status != 404:
                fail(f"the gateway's opt-out list could not be read: {exc}")
            err.print("[yellow]warning: the gateway has no checkoptout call (it is not smsgw?): opted-out numbers are not counted[/]")
            found = estimate(source.records(), builder, table, state)
    except CampaignError as exc:
        raise click.UsageError(str(exc)) from None
    print_estimate(out, found)


def _resume_state_for_dry_run(path: Path | None, source: CsvSource) -> ResumeState:
    if path is None or not path.exists():
        return ResumeState()
    try:
        return ResultsLog.read_state(path, source.header)
    except CampaignError as exc:
        raise click.UsageError(str(exc)) from None


def print_estimate(out: Console, found: Estimate) -> None:
    tally = found.tally
    table = Table(title="smsgw send --dry-run: nothing was sent", title_justify="left")
    table.add_column("network")
    table.add_column("messages", justify="right")
    table.add_column("parts", justify="right")
    table.add_column("estimated cost", justify="right")
    for network_id, entry in sorted(found.networks.items()):
        table.add_row(f"{network_id} {entry.name}", f"{entry.messages:,}", f"{entry.parts:,}", format_units(entry.cost_hundredths))
    table.add_row("total", f"{found.messages:,}", f"{found.parts:,}", format_units(found.cost_hundredths), style="bold")
    out.print(table)
    encodings = ", ".join(f"{count:,} {name}" for name, count in sorted(found.encodings.items())) or "none"
    out.print(
        f"rows: {tally.records:,}; to send: {found.messages:,} ({encodings}); bad: {tally.bad:,}"
        + (f"; already done: {tally.already_done:,}" if tally.already_done else "")
    )
    out.print(
        "cost is an estimate in units from the local network table (SMSGW_NETWORKS_FILE, Kenya by default); "
        "the gateway's own prices and routes decide."
    )
    if found.checked:
        out.print(f"opted out (the gateway answers them 1011 and charges nothing; not in the table): {found.opted_out:,}")
        for line, mobile in found.opted_out_lines:
            out.print(f"  line {line}: {mobile}")
        if found.opted_out > len(found.opted_out_lines):
            out.print(f"  ... and {found.opted_out - len(found.opted_out_lines):,} more")
        if found.promotional:
            out.print(f"promotional shortcode: counted with each network's opt-out footer, which adds {found.footer_parts:,} parts.")
        elif found.promotional is None:
            out.print("not counted: the opt-out footer of a promotional shortcode (it adds to the parts): the gateway did not say.")
    else:
        out.print(
            "not counted: numbers on the partner's opt-out list (the gateway answers them 1011 and charges nothing; give the connection "
            "settings to ask it) and the opt-out footer of a promotional shortcode (it adds to the parts): both are known to the gateway only."
        )
    if tally.problem_count:
        out.print(f"bad rows ({tally.problem_count:,}):")
        for line, text in tally.problems:
            out.print(f"  line {line}: {text}")
        if tally.problem_count > len(tally.problems):
            out.print(f"  ... and {tally.problem_count - len(tally.problems):,} more")
