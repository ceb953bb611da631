"""The web console's store: operators, portal passwords, browser sessions, the audit log, and
the reads its pages show. Each function is one transaction's work on a Connection.

Every read of messages goes through the primary key and stops at a limit, so a page costs
the same on a store of ten million messages as on an empty one: a number's messages are found
in message_numbers (and by a scan of the few ids above the roll mark, store/rollups.py), a
partner's newest through its ledger charges, the hourly figures in message_rollups and
outcome_rollups. Reads for a partner's portal take the partner id and filter on it
in SQL: another partner's message is not found, the same answer as one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from . import rollups
from .errors import AlreadyExists, NotFound
from .schema import (
    audit_log,
    callbacks,
    ledger,
    message_numbers,
    message_parts,
    messages,
    operators,
    partners,
    portal_passwords,
    shortcodes,
    unmatched_receipts,
    web_sessions,
)

CONSOLE = "console"  # sessions of operators
PORTAL = "portal"  # sessions of partners
HOUR_MS = 3600 * 1000

# -- accounts -----------------------------------------------------------------------------------


def create_operator(conn: Connection, name: str, password_hash: str, now: int) -> None:
    if conn.execute(select(operators.c.name).where(operators.c.name == name)).first() is not None:
        raise AlreadyExists(f"operator {name} already exists")
    conn.execute(insert(operators).values(name=name, password_hash=password_hash, created_at=now))


def list_operators(conn: Connection) -> list[Any]:
    return list(conn.execute(select(operators.c.name, operators.c.created_at).order_by(operators.c.name)).all())


def remove_operator(conn: Connection, name: str) -> None:
    """Removes the operator and ends its sessions."""
    if conn.execute(delete(operators).where(operators.c.name == name)).rowcount == 0:
        raise NotFound(f"operator {name} does not exist")
    end_sessions_of(conn, CONSOLE, name)


def set_portal_password(conn: Connection, partner_id: str, password_hash: str, now: int) -> None:
    """Sets the partner's portal password and ends the partner's portal sessions."""
    if conn.execute(select(partners.c.id).where(partners.c.id == partner_id)).first() is None:
        raise NotFound(f"partner {partner_id} does not exist")
    conn.execute(delete(portal_passwords).where(portal_passwords.c.partner_id == partner_id))
    conn.execute(insert(portal_passwords).values(partner_id=partner_id, password_hash=password_hash, created_at=now))
    end_sessions_of(conn, PORTAL, partner_id)


def password_hash(conn: Connection, area: str, subject: str) -> str | None:
    """The stored password hash of an operator (area console) or a partner (area portal)."""
    if area == CONSOLE:
        query = select(operators.c.password_hash).where(operators.c.name == subject)
    else:
        query = select(portal_passwords.c.password_hash).where(portal_passwords.c.partner_id == subject)
    return conn.execute(query).scalar_one_or_none()


# -- sessions -----------------------------------------------------------------------------------


def start_session(conn: Connection, token_hash: str, area: str, subject: str, csrf_token: str, now: int, expires_at: int) -> None:
    # Sessions that ran out go here, by their index, rather than by a sweeper of their own.
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
    conn.execute(
        insert(web_sessions).values(token_hash=token_hash, area=area, subject=subject, csrf_token=csrf_token, created_at=now, expires_at=expires_at)
    )


def find_session(conn: Connection, token_hash: str, area: str, now: int) -> Any | None:
    """Subject and CSRF token of a session of `area` that has not run out."""
    return conn.execute(
        select(web_sessions.c.subject, web_sessions.c.csrf_token, web_sessions.c.expires_at).where(
            web_sessions.c.token_hash == token_hash, web_sessions.c.area == area, web_sessions.c.expires_at > now
        )
    ).first()


def end_session(conn: Connection, token_hash: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash))


def end_sessions_of(conn: Connection, area: str, subject: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.area == area, web_sessions.c.subject == subject))


# -- audit log ----------------------------------------------------------------------------------


def record_audit(conn: Connection, operator: str, action: str, subject: str, detail: str, now: int) -> None:
    conn.execute(insert(audit_log).values(operator=operator, action=action, subject=subject[:200], detail=detail[:2000], created_at=now))


def audit_entries(conn: Connection, limit: int) -> list[Any]:
    return list(conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).all())


# -- partners -----------------------------------------------------------------------------------


def partner_list(conn: Connection, limit: int) -> list[Any]:
    return list(
        conn.execute(
            select(partners.c.id, partners.c.name, partners.c.status, partners.c.balance, partners.c.parent_id, partners.c.created_at)
            .order_by(partners.c.id)
            .limit(limit)
        ).all()
    )


def set_status(conn: Connection, partner_id: str, status: str) -> None:
    if conn.execute(update(partners).where(partners.c.id == partner_id).values(status=status)).rowcount == 0:
        raise NotFound(f"partner {partner_id} does not exist")


def partner_page(conn: Connection, partner_id: str, ledger_rows: int) -> tuple[Any, list[Any], list[Any], bool] | None:
    """The partner's row, shortcodes, newest ledger entries, and whether it has a portal password."""
    found = conn.execute(select(partners).where(partners.c.id == partner_id)).first()
    if found is None:
        return None
    codes = list(conn.execute(select(shortcodes).where(shortcodes.c.partner_id == partner_id).order_by(shortcodes.c.shortcode)).all())
    has_password = conn.execute(select(portal_passwords.c.partner_id).where(portal_passwords.c.partner_id == partner_id)).first() is not None
    return found, codes, ledger_page(conn, partner_id, ledger_rows), has_password


def ledger_page(conn: Connection, partner_id: str, limit: int) -> list[Any]:
    return list(conn.execute(select(ledger).where(ledger.c.partner_id == partner_id).order_by(ledger.c.id.desc()).limit(limit)).all())


def ledger_entries(conn: Connection, limit: int, before: int | None = None) -> list[Any]:
    """Every partner's ledger, newest first by the primary key; with `before`, the entries
    older than that id (the next page)."""
    query = select(ledger).order_by(ledger.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(ledger.c.id < before)
    return list(conn.execute(query).all())


def unmatched_receipts_page(conn: Connection, limit: int) -> list[Any]:
    """The newest receipts that arrived before (or without) their submit_sm_resp, matched
    since or still open, by the primary key."""
    return list(conn.execute(select(unmatched_receipts).order_by(unmatched_receipts.c.id.desc()).limit(limit)).all())


def balance_points(conn: Connection, partner_id: str, since: int, limit: int) -> list[tuple[int, int]]:
    """(time, balance after) of the partner's ledger entries since `since`, oldest first: the
    newest `limit` of them (ix_ledger_partner_time)."""
    rows = conn.execute(
        select(ledger.c.created_at, ledger.c.balance_after)
        .where(ledger.c.partner_id == partner_id, ledger.c.created_at >= since)
        .order_by(ledger.c.created_at.desc(), ledger.c.id.desc())
        .limit(limit)
    ).all()
    return [(int(r.created_at), int(r.balance_after)) for r in reversed(rows)]


def accepted_per_hour(conn: Connection, partner_id: str | None, since: int, cap: int) -> list[tuple[int, int]]:
    """(hour start, messages accepted) per hour since `since`, of one partner or of all: the
    rollups up to the roll mark, and the messages above it read by id, at most `cap` of them."""
    counts = {hour: accepted for hour, accepted, _, _ in rollups.accepted_per_hour(conn, partner_id, since)}
    tail = select(messages.c.created_at).where(messages.c.id >= rollups.mark(conn), messages.c.created_at >= since)
    if partner_id is not None:
        tail = tail.where(messages.c.partner_id == partner_id)
    for (created_at,) in conn.execute(tail.limit(cap)).all():
        hour = created_at // HOUR_MS * HOUR_MS
        counts[hour] = counts.get(hour, 0) + 1
    return sorted(counts.items())


# What the dashboard counts, each over its windows: accepted (message_rollups and the messages
# above the roll mark), sent (a carrier took it), delivered, failed (every other final state
# but a cancel), cancelled (outcome_rollups).
TRAFFIC_KINDS = ("accepted", "sent", "delivered", "failed", "cancelled")
_KIND_OF_STATE = {2: "sent", 3: "delivered", 4: "failed", 5: "failed", 6: "failed", 7: "failed", 8: "failed", 9: "cancelled"}


@dataclass
class Traffic:
    windows: tuple[int, ...]  # the first hour of each window
    totals: dict[str, list[int]] = field(default_factory=dict)  # kind -> messages per window
    by_smsc: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # SMSC ('' none) -> kind -> per window
    by_network: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    by_partner: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def add(self, kind: str, partner_id: str, network_id: int, smsc: str | None, counts: tuple[int, ...]) -> None:
        groups: list[dict[str, list[int]]] = [self.totals, self.by_network.setdefault(network_id, {}), self.by_partner.setdefault(partner_id, {})]
        if smsc is not None:
            groups.append(self.by_smsc.setdefault(smsc, {}))
        for group in groups:
            total = group.setdefault(kind, [0] * len(counts))
            for index, value in enumerate(counts):
                total[index] += value


def traffic(conn: Connection, windows: tuple[int, ...], cap: int) -> Traffic:
    """Messages accepted, sent, delivered, failed and cancelled over each window (from its
    hour's start), in all and by SMSC, network and partner: one read of each rollup, and of
    the messages above the roll mark at most `cap`."""
    found = Traffic(tuple(w // HOUR_MS * HOUR_MS for w in windows))
    for partner_id, network_id, counts in rollups.accepted_counts(conn, found.windows):
        found.add("accepted", partner_id, network_id, None, counts)
    tail = select(messages.c.created_at, messages.c.partner_id, messages.c.network_id).where(
        messages.c.id >= rollups.mark(conn), messages.c.created_at >= min(found.windows)
    )
    for created_at, partner_id, network_id in conn.execute(tail.limit(cap)).all():
        found.add("accepted", partner_id, network_id, None, tuple(int(created_at >= w) for w in found.windows))
    for row in rollups.outcome_counts(conn, found.windows):
        found.add(_KIND_OF_STATE.get(row.state, "failed"), row.partner_id, row.network_id, row.smsc, row.messages)
    return found


def outcomes_per_hour(conn: Connection, since: int) -> dict[int, dict[str, int]]:
    """hour start -> kind (sent, delivered, failed, cancelled) -> messages, from `since`'s hour on."""
    hours: dict[int, dict[str, int]] = {}
    for hour, state, count in rollups.outcomes_per_hour(conn, since):
        kind = _KIND_OF_STATE.get(state, "failed")
        hours.setdefault(hour, {})[kind] = hours.get(hour, {}).get(kind, 0) + count
    return hours


# -- messages -----------------------------------------------------------------------------------

# The columns of a message as the console, the portal and delivery reports list it.
LISTED_COLUMNS = (
    messages.c.id,
    messages.c.partner_id,
    messages.c.shortcode,
    messages.c.msisdn,
    messages.c.network_id,
    messages.c.text,
    messages.c.parts,
    messages.c.cost,
    messages.c.state,
    messages.c.created_at,
    messages.c.done_at,
    messages.c.clientsmsid,
)


def recent_messages(conn: Connection, limit: int, before: int | None = None) -> list[Any]:
    """The newest messages of all partners (highest ids); with `before`, those older than that
    id (the next page)."""
    query = select(*LISTED_COLUMNS).order_by(messages.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(messages.c.id < before)
    return list(conn.execute(query).all())


# Where a partner's list goes on: the ledger entry of the batch it stopped in, and the message
# id it stopped at (the next page starts below it).
PageCursor = tuple[int, int]
CHARGES_READ = 200  # ledger entries read at a time


def partner_messages(conn: Connection, partner_id: str, limit: int, after: PageCursor | None = None) -> tuple[list[Any], PageCursor | None]:
    """The partner's newest messages, newest charge first and the newest of each batch
    first, and the cursor of the next page (None: no more).

    Found through the ledger (ix_ledger_partner), not an index on messages: each accepting
    request is one charge entry with its batch id and message count, and its messages are
    the contiguous id range from the batch id up (store.next_message_ids), less the entries
    refused; so each batch is one primary-key range read of exactly its messages."""
    found: list[Any] = []
    entry_below, id_below = (after[0] + 1, after[1]) if after is not None else (None, None)
    while True:
        query = (
            select(ledger.c.id, ledger.c.batch_id, ledger.c.message_count)
            .where(ledger.c.partner_id == partner_id, ledger.c.kind == "charge", ledger.c.message_count > 0)
            .order_by(ledger.c.id.desc())
            .limit(CHARGES_READ)
        )
        if entry_below is not None:
            query = query.where(ledger.c.id < entry_below)
        charges = conn.execute(query).all()
        for charge in charges:
            batch = (
                select(*LISTED_COLUMNS)
                .where(messages.c.id >= charge.batch_id, messages.c.batch_id == charge.batch_id, messages.c.partner_id == partner_id)
                .order_by(messages.c.id)
                .limit(charge.message_count)
            )
            rows = [row for row in reversed(conn.execute(batch).all()) if id_below is None or row.id < id_below]
            id_below = None
            for row in rows:
                found.append(row)
                if len(found) == limit:
                    return found, (charge.id, row.id)
        if len(charges) < CHARGES_READ:
            return found, None
        entry_below = charges[-1].id


def find_messages(conn: Connection, partner_id: str | None, message_id: int | None, msisdn: str | None, limit: int) -> list[Any]:
    """Messages with this id or to this number (international digits), newest first; of one
    partner, or of all. A number's messages below the roll mark are found in message_numbers,
    those above it by reading the ids above it; the mark is read first, so that a step of the
    roller in between finds a message twice, never not at all."""
    found: dict[int, Any] = {}
    owned = [messages.c.partner_id == partner_id] if partner_id is not None else []
    if message_id is not None:
        for row in conn.execute(select(*LISTED_COLUMNS).where(messages.c.id == message_id, *owned)).all():
            found[row.id] = row
    if msisdn is not None:
        mark = rollups.mark(conn)
        recent = select(*LISTED_COLUMNS).where(messages.c.id >= mark, messages.c.msisdn == msisdn, *owned).order_by(messages.c.id.desc()).limit(limit)
        for row in conn.execute(recent).all():
            found[row.id] = row
        numbered = select(message_numbers.c.message_id).where(message_numbers.c.msisdn == msisdn)
        if partner_id is not None:
            numbered = numbered.where(message_numbers.c.partner_id == partner_id)
        ids = list(conn.execute(numbered.order_by(message_numbers.c.message_id.desc()).limit(limit)).scalars())
        if ids:
            for row in conn.execute(select(*LISTED_COLUMNS).where(messages.c.id.in_(ids), *owned)).all():
                found[row.id] = row
    return [found[i] for i in sorted(found, reverse=True)[:limit]]


def message_history(conn: Connection, partner_id: str | None, message_id: int) -> tuple[Any, list[Any], list[Any]] | None:
    """The message (of `partner_id`, unless None), the parts it went out as with their
    receipts, and its delivery-report callbacks."""
    query = select(messages).where(messages.c.id == message_id)
    if partner_id is not None:
        query = query.where(messages.c.partner_id == partner_id)
    found = conn.execute(query).first()
    if found is None:
        return None
    parts = list(conn.execute(select(message_parts).where(message_parts.c.message_id == message_id).order_by(message_parts.c.part_no)).all())
    posts = list(
        conn.execute(
            select(
                callbacks.c.url,
                callbacks.c.attempts,
                callbacks.c.created_at,
                callbacks.c.delivered_at,
                callbacks.c.given_up_at,
                callbacks.c.last_error,
            )
            .where(callbacks.c.message_id == message_id, callbacks.c.partner_id == found.partner_id)
            .order_by(callbacks.c.id)
        ).all()
    )
    return found, parts, posts
