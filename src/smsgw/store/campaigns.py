"""The portal's campaigns and the console's one-time form ids. Each function is one
transaction's work on a Connection.

A campaign's messages are found through `campaign_ranges` (runs of consecutive message ids of
its accepted batches) and the primary key of messages, never by scanning messages: its counts
and its delivery report cost what its own messages cost, whatever the store's size. Every read
takes the partner id and filters on it, so another partner's campaign is not found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from . import web
from .schema import campaign_ranges, campaigns, form_submissions, messages

PREVIEW = "preview"
ACCEPTING = "accepting"
ACCEPTED = "accepted"
STOPPED = "stopped"
EXPIRED = "expired"  # a preview never confirmed: its upload is dropped
PREVIEW_KEPT_MS = 24 * 3600 * 1000
FORM_IDS_KEPT_MS = 7 * 24 * 3600 * 1000

_SUMMARY = (
    campaigns.c.id,
    campaigns.c.partner_id,
    campaigns.c.name,
    campaigns.c.kind,
    campaigns.c.shortcode,
    campaigns.c.template,
    campaigns.c.mobile_column,
    campaigns.c.confirm_token,
    campaigns.c.status,
    campaigns.c.rows,
    campaigns.c.valid,
    campaigns.c.estimated_cost,
    campaigns.c.batches_done,
    campaigns.c.accepted,
    campaigns.c.refused,
    campaigns.c.detail,
    campaigns.c.created_at,
    campaigns.c.confirmed_at,
    campaigns.c.heartbeat_at,
    campaigns.c.finished_at,
)


# -- one-time form ids ----------------------------------------------------------------------


class AlreadySubmitted(Exception):
    """The form with this id was submitted before; `result` is where its first POST led."""

    def __init__(self, result: str) -> None:
        super().__init__(result)
        self.result = result


def claim_form(conn: Connection, area: str, subject: str, form_id: str, result: str, now: int) -> None:
    """Records the form id in the caller's transaction; AlreadySubmitted (after which the
    caller's transaction must roll back) when an earlier POST recorded it."""
    earlier = submitted_form(conn, area, subject, form_id)
    if earlier is not None:
        raise AlreadySubmitted(earlier)
    # A page is not reposted after a week: older ids go (ix_form_submissions_created).
    conn.execute(delete(form_submissions).where(form_submissions.c.created_at < now - FORM_IDS_KEPT_MS))
    try:
        with conn.begin_nested():
            conn.execute(insert(form_submissions).values(area=area, subject=subject, form_id=form_id, result=result, created_at=now))
    except IntegrityError:
        # A concurrent POST of the same form won the insert.
        raise AlreadySubmitted(submitted_form(conn, area, subject, form_id) or result) from None


def submitted_form(conn: Connection, area: str, subject: str, form_id: str) -> str | None:
    return conn.execute(
        select(form_submissions.c.result).where(
            form_submissions.c.area == area, form_submissions.c.subject == subject, form_submissions.c.form_id == form_id
        )
    ).scalar_one_or_none()


# -- campaigns --------------------------------------------------------------------------------


def create_campaign(
    conn: Connection,
    partner_id: str,
    name: str,
    kind: str,
    shortcode: str,
    template: str,
    mobile_column: str,
    upload: bytes,
    token: str,
    rows: int,
    valid: int,
    estimated_cost: int,
    now: int,
) -> int:
    """A campaign in preview, holding its upload until it is confirmed; its id. The partner's
    previews left unconfirmed for a day expire and drop their uploads."""
    conn.execute(
        update(campaigns)
        .where(campaigns.c.partner_id == partner_id, campaigns.c.status == PREVIEW, campaigns.c.created_at < now - PREVIEW_KEPT_MS)
        .values(status=EXPIRED, upload=None)
    )
    return conn.execute(
        insert(campaigns)
        .values(
            partner_id=partner_id,
            name=name,
            kind=kind,
            shortcode=shortcode,
            template=template,
            mobile_column=mobile_column or None,
            upload=upload,
            confirm_token=token,
            status=PREVIEW,
            rows=rows,
            valid=valid,
            estimated_cost=estimated_cost,
            created_at=now,
        )
        .returning(campaigns.c.id)
    ).scalar_one()


def campaign(conn: Connection, partner_id: str, campaign_id: int) -> Any | None:
    return conn.execute(select(*_SUMMARY).where(campaigns.c.id == campaign_id, campaigns.c.partner_id == partner_id)).first()


def campaign_list(conn: Connection, partner_id: str, limit: int) -> list[Any]:
    """The partner's newest campaigns (ix_campaigns_partner)."""
    return list(conn.execute(select(*_SUMMARY).where(campaigns.c.partner_id == partner_id).order_by(campaigns.c.id.desc()).limit(limit)).all())


def campaign_upload(conn: Connection, campaign_id: int) -> bytes | None:
    return conn.execute(select(campaigns.c.upload).where(campaigns.c.id == campaign_id)).scalar_one_or_none()


def confirm_campaign(conn: Connection, partner_id: str, campaign_id: int, token: str, now: int) -> bool:
    """Moves the campaign from preview to accepting if `token` is its confirmation token;
    False when it was confirmed before (or the token is not its own)."""
    changed = conn.execute(
        update(campaigns)
        .where(
            campaigns.c.id == campaign_id,
            campaigns.c.partner_id == partner_id,
            campaigns.c.status == PREVIEW,
            campaigns.c.confirm_token == token,
        )
        .values(status=ACCEPTING, confirmed_at=now, heartbeat_at=now)
    )
    return changed.rowcount == 1


def take_over(conn: Connection, campaign_id: int, stale_before: int, now: int) -> bool:
    """Claims an accepting campaign whose process stopped beating before `stale_before`
    (killed mid-way), for this process to finish; False if another is on it."""
    changed = conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.status == ACCEPTING, campaigns.c.heartbeat_at < stale_before)
        .values(heartbeat_at=now)
    )
    return changed.rowcount == 1


def record_batch(conn: Connection, campaign_id: int, batch: int, ranges: Sequence[tuple[int, int]], accepted: int, refused: int, now: int) -> bool:
    """Counts block `batch` as done with its id ranges, once: False (nothing written) when it
    was counted already (a second process replayed the same batch)."""
    changed = conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.batches_done == batch, campaigns.c.status == ACCEPTING)
        .values(
            batches_done=batch + 1,
            accepted=campaigns.c.accepted + accepted,
            refused=campaigns.c.refused + refused,
            heartbeat_at=now,
        )
    )
    if changed.rowcount != 1:
        return False
    if ranges:
        conn.execute(insert(campaign_ranges), [{"campaign_id": campaign_id, "first_id": first, "last_id": last} for first, last in ranges])
    return True


def finish_campaign(conn: Connection, campaign_id: int, status: str, detail: str | None, now: int) -> None:
    """Accepted (or stopped, with why): the upload is no longer needed."""
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.status == ACCEPTING)
        .values(status=status, detail=detail, finished_at=now, heartbeat_at=now, upload=None)
    )


def _ranges(conn: Connection, campaign_id: int) -> list[tuple[int, int]]:
    rows = conn.execute(
        select(campaign_ranges.c.first_id, campaign_ranges.c.last_id)
        .where(campaign_ranges.c.campaign_id == campaign_id)
        .order_by(campaign_ranges.c.first_id)
    ).all()
    return [(row.first_id, row.last_id) for row in rows]


def state_counts(conn: Connection, partner_id: str, campaign_id: int) -> tuple[Counter[int], int]:
    """The campaign's messages by delivery state, and what they cost, read range by range
    through the primary key of messages."""
    counts: Counter[int] = Counter()
    cost = 0
    for first, last in _ranges(conn, campaign_id):
        query = (
            select(messages.c.state, func.count(), func.coalesce(func.sum(messages.c.cost), 0))
            .where(messages.c.id >= first, messages.c.id <= last, messages.c.partner_id == partner_id)
            .group_by(messages.c.state)
        )
        for state, count, spent in conn.execute(query).all():
            counts[int(state)] += int(count)
            cost += int(spent)
    return counts, cost


def campaign_messages(conn: Connection, partner_id: str, campaign_id: int, after: int | None, limit: int) -> list[Any]:
    """Up to `limit` of the campaign's messages in id order, those past `after` (the next page)."""
    found: list[Any] = []
    for first, last in _ranges(conn, campaign_id):
        if after is not None and last <= after:
            continue
        start = first if after is None else max(first, after + 1)
        query = (
            select(*web.LISTED_COLUMNS)
            .where(messages.c.id >= start, messages.c.id <= last, messages.c.partner_id == partner_id)
            .order_by(messages.c.id)
            .limit(limit - len(found))
        )
        found.extend(conn.execute(query).all())
        if len(found) >= limit:
            break
    return found
