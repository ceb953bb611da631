"""Campaigns in the partners' portal: a CSV or XLSX upload with a message template, previewed
with the rules of `smsgw send --dry-run` (client/campaign.py: the same reader, template and
estimate), confirmed once with the preview's one-time token, accepted in the background
through the acceptance service in batches of CAMPAIGN_BATCH rows (each charged in its own
transaction, as a sendbulk request is), then followed to its delivery states.

A confirmed campaign is accepted by the process that took the confirmation; each batch goes
with an Idempotency-Key of its own (campaign id and block), so if that process dies, another
that shows the campaign after HEARTBEAT_STALE_MS takes it over and sends the unfinished block
again without charging it twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import orjson
from fastapi import APIRouter
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..api.optouts import promotional_footers
from ..client.campaign import (
    REASON_BAD_NUMBER,
    REASON_EMPTY_TEXT,
    REASON_TOO_LONG,
    REASON_UNKNOWN_NETWORK,
    CampaignError,
    CsvSource,
    Estimate,
    Record,
    ResumeState,
    RowBuilder,
    TableSource,
    XlsxSource,
    estimate,
)
from ..client.models import Message, OptOutAnswer
from ..domain.codes import Code, describe
from ..domain.states import PRIORITY_BULK, DeliveryState
from ..service.acceptance import Acceptance
from ..service.errors import BadRequest, RateLimited
from ..store import campaigns as campaign_store
from ..store import optout
from ..store.store import Store, now_ms
from .charts import bar_chart
from .portal_pages import REPORT_COLUMNS, csv_line, report_row
from .web import SECURITY_HEADERS, Refusal, Session, Web, guarded

log = logging.getLogger(__name__)

AREA = "portal"
MAX_UPLOAD_BYTES = 10_000_000
MAX_ROWS = 100_000
CAMPAIGN_BATCH = 1000  # rows a batch: the API's sendbulk limit
PREVIEW_MESSAGES = 10
LIST_LIMIT = 200
REPORT_PAGE = 1000
HEARTBEAT_STALE_MS = 60_000
# Refusals of a whole batch that pass by themselves: the batch is tried again after a pause.
RETRY_PAUSE_S = 2.0
RETRIES = 30
REASONS = (REASON_BAD_NUMBER, REASON_UNKNOWN_NETWORK, "opted out", REASON_EMPTY_TEXT, REASON_TOO_LONG)
# The chart's bars: each delivery state, in the order a message passes them.
CHART_STATES = tuple(DeliveryState)


def source_of(name: str, data: bytes) -> tuple[str, TableSource]:
    """The upload's kind (csv or xlsx) and its rows; CampaignError for a file that is neither."""
    suffix = PurePath(name).suffix.lower()
    if data.startswith(b"PK\x03\x04") or suffix in (".xlsx", ".xlsm"):
        return "xlsx", XlsxSource(name, data)
    if suffix in (".xls", ".ods", ".numbers"):
        raise CampaignError(f"{name}: {suffix} files are not read; save the sheet as XLSX or CSV")
    try:
        return "csv", CsvSource(name, data=data)
    except CampaignError as exc:
        raise CampaignError(str(exc).replace("; give --encoding", "; save it as UTF-8 CSV or XLSX")) from None


def bounded(source: TableSource) -> Iterator[Record]:
    """The source's records, CampaignError past MAX_ROWS."""
    for record in source.records():
        if record.index > MAX_ROWS:
            raise CampaignError(f"{source.path}: more than {MAX_ROWS:,} rows; split the campaign")
        yield record


def builder_of(source: TableSource, template: str, mobile_column: str) -> RowBuilder:
    return RowBuilder.create(source, mobile_column=mobile_column or None, message_template=template if template.strip() else None)


@dataclass
class Preview:
    kind: str
    found: Estimate
    samples: list[tuple[int, str, str]] = field(default_factory=list)  # line, number, rendered text

    @property
    def reasons(self) -> list[tuple[str, int]]:
        counts = Counter(self.found.tally.reasons)
        counts["opted out"] = self.found.opted_out
        return [(reason, counts[reason]) for reason in REASONS if counts[reason]]

    @property
    def invalid(self) -> int:
        return self.found.tally.bad + self.found.opted_out


def preview(name: str, data: bytes, template: str, mobile_column: str, table: Any, max_parts: int, opted_out: Any) -> Preview:
    """What `smsgw send --dry-run` with the gateway's opt-out list says of the upload (run in a
    thread: `opted_out` asks the store)."""
    kind, source = source_of(name, data)
    builder = builder_of(source, template, mobile_column)
    samples: list[tuple[int, str, str]] = []

    def records() -> Iterator[Record]:
        for record in bounded(source):
            if len(samples) < PREVIEW_MESSAGES:
                built = builder.build(record)
                if isinstance(built, Message):
                    samples.append((record.line, str(built.mobile), built.message))
            yield record

    found = estimate(records(), builder, table, ResumeState(), max_parts, opted_out)
    if found.tally.records == 0:
        raise CampaignError(f"{name}: no rows under the header")
    return Preview(kind, found, samples)


def batches(name: str, data: bytes, template: str, mobile_column: str) -> list[tuple[list[dict[str, Any]], int]]:
    """The campaign's blocks of CAMPAIGN_BATCH consecutive rows: each block's entries for
    acceptance and how many of its rows could not become one (run in a thread)."""
    _, source = source_of(name, data)
    builder = builder_of(source, template, mobile_column)
    blocks: list[tuple[list[dict[str, Any]], int]] = []
    for record in bounded(source):
        if (record.index - 1) % CAMPAIGN_BATCH == 0:
            blocks.append(([], 0))
        entries, bad = blocks[-1]
        built = builder.build(record)
        if isinstance(built, str):
            blocks[-1] = (entries, bad + 1)
        else:
            entries.append({"mobile": built.mobile, "message": built.message, "clientsmsid": built.clientsmsid})
    return blocks


def id_ranges(responses: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Runs of consecutive message ids among a batch's accepted entries. Entry i was given the
    i-th id reserved for the batch: two accepted entries whose ids differ by their distance in
    the batch have only the batch's own ids between them (refused ones, never stored), so they
    stay in one run; ids from a later block of the id sequence start a new one."""
    ranges: list[tuple[int, int]] = []
    previous: tuple[int, int] | None = None  # (position, id)
    for position, entry in enumerate(responses):
        if entry.get("response-code") != 200:
            continue
        message_id = int(entry["messageid"])
        if previous is not None and message_id - previous[1] == position - previous[0]:
            ranges[-1] = (ranges[-1][0], message_id)
        else:
            ranges.append((message_id, message_id))
        previous = (position, message_id)
    return ranges


class CampaignRunner:
    """Accepts confirmed campaigns in this process, one task each."""

    def __init__(self, web: Web) -> None:
        self.web = web
        self.running: dict[int, asyncio.Task[None]] = {}

    def start(self, store: Store, acceptance: Acceptance, campaign_id: int, partner_id: str) -> None:
        if campaign_id in self.running:
            return
        task = asyncio.get_running_loop().create_task(self._run(store, acceptance, campaign_id, partner_id))
        self.running[campaign_id] = task
        task.add_done_callback(lambda _: self.running.pop(campaign_id, None))

    async def _run(self, store: Store, acceptance: Acceptance, campaign_id: int, partner_id: str) -> None:
        try:
            detail = await self._accept(store, acceptance, campaign_id, partner_id)
        except Exception:
            # Left accepting (the server stopping, the store gone): the first process that shows
            # it after HEARTBEAT_STALE_MS takes it over where its record ends.
            log.exception("campaign %d stopped before all of it was accepted; it is taken over later", campaign_id)
            return
        status = campaign_store.ACCEPTED if detail is None else campaign_store.STOPPED
        await store.write(campaign_store.finish_campaign, campaign_id, status, detail, now_ms())

    async def _accept(self, store: Store, acceptance: Acceptance, campaign_id: int, partner_id: str) -> str | None:
        """None when every batch was handed to acceptance; else why it stopped."""
        row = await store.read(campaign_store.campaign, partner_id, campaign_id)
        data = await store.read(campaign_store.campaign_upload, campaign_id)
        if row is None or data is None:
            return "the upload is no longer stored"
        try:
            blocks = await asyncio.to_thread(batches, row.name, data, row.template, row.mobile_column or "")
        except CampaignError as exc:
            return str(exc)
        for number, (entries, bad) in enumerate(blocks):
            if number < row.batches_done:
                continue
            accepted, refused, ranges = 0, bad, []
            if entries:
                answer = await self._submit(store, acceptance, partner_id, row.shortcode, entries, f"portal-campaign-{campaign_id}-{number}")
                if isinstance(answer, str):
                    return answer
                ranges = id_ranges(answer)
                accepted = sum(1 for entry in answer if entry.get("response-code") == 200)
                refused += len(answer) - accepted
            if not await store.write(campaign_store.record_batch, campaign_id, number, ranges, accepted, refused, now_ms()):
                return "taken over by another process"
        return None

    async def _submit(self, store: Store, acceptance: Acceptance, partner_id: str, shortcode: str, entries: list[dict[str, Any]], key: str) -> Any:
        """The batch's answers (one per entry), or why the batch could not be handed over."""
        body = orjson.dumps(entries)
        for _ in range(RETRIES):
            partner = await store.get_partner(partner_id)
            if partner is None or not partner.active:
                return "the account is not active"
            try:
                answer = await acceptance.submit(
                    partner,
                    shortcode,
                    entries,
                    priority=PRIORITY_BULK,
                    mobile_as_number=False,
                    idempotency=(key, hashlib.sha256(body).hexdigest()),
                    kind="campaign",
                )
            except RateLimited as exc:
                await asyncio.sleep(exc.retry_after or RETRY_PAUSE_S)
                continue
            except BadRequest as exc:
                if exc.code == Code.TRY_AGAIN_LATER:
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
                return describe(exc.code, exc.detail)
            return orjson.loads(answer)["responses"]
        return "the store stayed unavailable; the messages accepted so far are sent"


def router(web: Web) -> APIRouter:
    routes = APIRouter()
    runner = CampaignRunner(web)

    def add(path: str, handler: Any, method: str = "GET") -> None:
        routes.add_api_route(path, guarded(web, AREA, handler), methods=[method])

    async def own_campaign(request: Request, session: Session) -> Any:
        raw = request.path_params["campaign_id"]
        found = None
        if raw.isascii() and raw.isdigit() and len(raw) <= 18:
            found = await web.store(request).read(campaign_store.campaign, session.subject, int(raw))
        if found is None:
            raise Refusal(web.error_page(AREA, 404, "No such campaign.", session))
        return found

    async def new_form(request: Request, status_code: int = 200, error: str | None = None, session: Session | None = None) -> Response:
        session = session or await web.session(request, AREA)
        store = web.store(request)
        codes = await store.list_shortcodes(session.subject)
        partner = await store.get_partner(session.subject)
        return web.page(
            "portal_campaign_new.html",
            status_code,
            area=AREA,
            session=session,
            partner=partner,
            shortcodes=codes,
            error=error,
            max_rows=MAX_ROWS,
            max_mb=MAX_UPLOAD_BYTES // 1_000_000,
        )

    async def list_page(request: Request) -> Response:
        session = await web.session(request, AREA)
        rows = await web.store(request).read(campaign_store.campaign_list, session.subject, LIST_LIMIT)
        return web.page("portal_campaigns.html", area=AREA, session=session, campaigns=rows, limit=LIST_LIMIT)

    async def upload(request: Request) -> Response:
        """The preview of an upload: nothing is sent before it is confirmed."""
        session = await web.session(request, AREA)
        fields, name, data = await web.upload_form(request, session, MAX_UPLOAD_BYTES)
        store = web.store(request)
        template = fields.get("template", "")
        mobile_column = fields.get("mobile_column", "").strip()
        shortcode = await store.get_shortcode(fields.get("shortcode", "").strip())
        if shortcode is None or shortcode.partner_id != session.subject:
            return await new_form(request, 400, "Choose one of your sender ids.", session)
        if len(template) > 2000:
            return await new_form(request, 400, "The message template may have at most 2000 characters.", session)
        loop = asyncio.get_running_loop()
        footers = promotional_footers(web.settings, shortcode)

        def opted_out(numbers: list[str]) -> OptOutAnswer:
            # From the estimate's thread: the store is asked on the event loop, as checkoptout does.
            normaliser = web.settings.networks.normaliser
            asked = [(number, normalised.digits) for number in numbers if (normalised := normaliser.normalise(number)) is not None]
            future = asyncio.run_coroutine_threadsafe(store.read(optout.listed, session.subject, shortcode.shortcode, [d for _, d in asked]), loop)
            listed = future.result(timeout=60)
            return OptOutAnswer([number for number, digits in asked if digits in listed], shortcode.promotional, footers)

        try:
            shown = await asyncio.to_thread(preview, name, data, template, mobile_column, web.settings.networks, web.settings.max_parts, opted_out)
        except CampaignError as exc:
            return await new_form(
                request,
                400,
                str(exc)
                .replace("--message-column", "a message column")
                .replace("--mobile-column", "the number column")
                .replace("--message", "the template"),
                session,
            )
        found = shown.found
        token = secrets.token_urlsafe(24)
        form_id = web.form_id(fields)

        def create(conn: Connection) -> int:
            now = now_ms()
            created = campaign_store.create_campaign(
                conn,
                session.subject,
                name,
                shown.kind,
                shortcode.shortcode,
                template,
                mobile_column,
                data,
                token,
                found.tally.records,
                found.messages,
                found.cost_hundredths,
                now,
            )
            if form_id is not None:
                campaign_store.claim_form(conn, AREA, session.subject, form_id, f"/portal/campaigns/{created}", now)
            return created

        try:
            campaign_id = await store.write(create)
        except campaign_store.AlreadySubmitted as earlier:
            return web.redirect(earlier.result)
        partner = await store.get_partner(session.subject)
        return web.page(
            "portal_campaign_preview.html",
            area=AREA,
            session=session,
            partner=partner,
            campaign_id=campaign_id,
            token=token,
            file_name=name,
            shortcode=shortcode,
            preview=shown,
            networks=sorted(found.networks.items()),
        )

    async def confirm(request: Request) -> Response:
        """Accepts the campaign once, whatever number of times its confirmation arrives."""
        session = await web.session(request, AREA)
        fields = await web.form_of(request, session)
        row = await own_campaign(request, session)
        store = web.store(request)
        if row.status == campaign_store.PREVIEW:
            partner = await store.get_partner(session.subject)
            if partner is not None and row.estimated_cost > partner.balance:
                return web.error_page(AREA, 400, "The balance does not cover the campaign's cost: top up first.", session)
        if await store.write(campaign_store.confirm_campaign, session.subject, row.id, fields.get("token", ""), now_ms()):
            runner.start(store, request.app.state.acceptance, row.id, session.subject)
        return web.redirect(f"/portal/campaigns/{row.id}")

    async def detail(request: Request) -> Response:
        session = await web.session(request, AREA)
        row = await own_campaign(request, session)
        store = web.store(request)
        if row.status == campaign_store.ACCEPTING and row.id not in runner.running:
            now = now_ms()
            if await store.write(campaign_store.take_over, row.id, now - HEARTBEAT_STALE_MS, now):
                runner.start(store, request.app.state.acceptance, row.id, session.subject)
        counts, cost = await store.read(campaign_store.state_counts, session.subject, row.id)
        series = [(state.description if state is not DeliveryState.NO_RECEIPT else "NoReceipt", counts.get(int(state), 0)) for state in CHART_STATES]
        pending = counts.get(int(DeliveryState.SCHEDULED), 0) + counts.get(int(DeliveryState.SENT_TO_NETWORK), 0)
        finished = row.status != campaign_store.PREVIEW and row.status != campaign_store.ACCEPTING and pending == 0
        return web.page(
            "portal_campaign.html",
            area=AREA,
            session=session,
            campaign=row,
            counts=counts,
            cost=cost,
            pending=pending,
            finished=finished,
            bars=bar_chart(series),
            chart_data=[{"state": int(state), "name": label, "messages": value} for state, (label, value) in zip(CHART_STATES, series)],
            total_batches=-(-row.rows // CAMPAIGN_BATCH),
        )

    async def report(request: Request) -> Response:
        """The campaign's delivery reports as CSV, in message id order, a page at a time."""
        session = await web.session(request, AREA)
        row = await own_campaign(request, session)
        store = web.store(request)

        async def rows() -> AsyncIterator[str]:
            yield csv_line(REPORT_COLUMNS)
            after = None
            while True:
                page = await store.read(campaign_store.campaign_messages, session.subject, row.id, after, REPORT_PAGE)
                for message in page:
                    yield csv_line(report_row(web, message))
                if len(page) < REPORT_PAGE:
                    return
                after = page[-1].id

        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="campaign-{row.id}-delivery-report.csv"'}
        return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)

    add("/portal/campaigns", list_page)
    add("/portal/campaigns/new", new_form)
    add("/portal/campaigns", upload, "POST")
    add("/portal/campaigns/{campaign_id}", detail)
    add("/portal/campaigns/{campaign_id}/confirm", confirm, "POST")
    add("/portal/campaigns/{campaign_id}/report.csv", report)
    return routes
