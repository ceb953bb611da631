"""Inbound (mobile-originated) messages: parts kept until the message is whole, routing to a
partner, consent keywords, the outbox of forwards to partners' endpoints, and the inbox.

A part is stored in the transaction that receives it, before the SMSC gets its
deliver_sm_resp; the transaction that stores the last part of a message (from any bind, in any
order) assembles, routes and queues it. On PostgreSQL a transaction-scoped advisory lock per
message keeps two binds that bring the last two parts at once from each waiting for the other.

Resends. SMPP gives a subscriber's message no id, and an SMSC sends a deliver_sm again when it
got no deliver_sm_resp for it. A single-part message records when its deliver_sm_resp was handed
to the connection (`answered_at`, written just after, `mark_answered`), which decides what a
later deliver_sm with the same number, shortcode and text is:

- stored, never answered (the gateway died, or the connection broke, between the commit and the
  answer; the SMSC may hold it for hours while the gateway is down): the SMSC still owes us
  that answer, so the same text at any age is its resend. Nothing new is stored or forwarded;
  its answer marks the stored message answered.
- stored and answered, the answer lost on the way (the connection broke after it was written):
  the SMSC resends soon, on its next bind. Within `duplicate_window_ms` the same text is taken
  as that resend; past it, as a new message.
- the subscriber sending the same text again: a new message once the window has passed since
  the answered one (within it, it cannot be told from a resend and is stored once).
- the gateway killed after the answer went out but before its mark was written (milliseconds):
  the message counts as unanswered, so the subscriber's next identical text to that shortcode,
  however late, is taken for a resend once, and the mark it gets ends that.

Parts of long messages are recognised by their part key while they are kept (the parts
timeout), not by these marks.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from ..domain.compliance import ALL_SHORTCODES, Consent, consent_of, words
from ..domain.encoding import decode
from ..domain.states import DeliveryState
from . import optout
from .schema import inbound_messages, inbound_parts, messages, partners, shortcode_keywords, shortcodes, smpp_inbound

# The partner's inbound method when its messages go as deliver_sm to its SMPP receiver binds
# (smpp_inbound; no URL, nothing for the HTTP forwarder).
INBOUND_BY_SMPP = "SMPP"


@dataclass(frozen=True)
class InboundPart:
    """One deliver_sm of a subscriber's message: its user data without the header, and where
    it sits in a concatenated message (total 1: a message of one part)."""

    msisdn: str
    shortcode: str
    data_coding: int
    data: bytes
    reference: int = 0
    total: int = 1
    number: int = 1


@dataclass(frozen=True)
class Consents:
    optout_keywords: frozenset[str]
    optin_keywords: frozenset[str]
    # The same text from the same number to the same shortcode within this of an answered
    # message is the SMSC resending a deliver_sm whose answer it did not get.
    duplicate_window_ms: int = 60_000


@dataclass(frozen=True)
class StoredInbound:
    id: int
    partner_id: str | None
    consent: Consent


@dataclass(frozen=True)
class Received:
    """What one deliver_sm did: `message` the message it made whole (None: parts still missing,
    or the SMSC sent again what is stored already); `answers` the stored message whose
    deliver_sm_resp this one's answer is, to be marked once it went out (None: nothing to mark)."""

    message: StoredInbound | None
    answers: int | None = None


def receive(conn: Connection, part: InboundPart, consents: Consents, now: int) -> Received:
    """Stores one part, or recognises it as a resend (see the module's docstring)."""
    if part.total <= 1:
        body = decode(part.data, part.data_coding)
        unanswered = _unanswered(conn, part.msisdn, part.shortcode, body)
        if unanswered is not None:
            return Received(None, unanswered)
        if _answered_since(conn, part.msisdn, part.shortcode, body, now - consents.duplicate_window_ms):
            return Received(None)
        stored = _store_message(conn, part.msisdn, part.shortcode, body, 1, True, consents, now)
        return Received(stored, stored.id)
    key = (part.msisdn, part.shortcode, part.reference, part.total)
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(key)})
    exists = conn.execute(select(inbound_parts.c.part_no).where(*_part_key(key), inbound_parts.c.part_no == part.number)).first()
    if exists is not None:  # the SMSC resending a part it had no answer for, maybe of a message already whole
        return Received(None)
    conn.execute(
        insert(inbound_parts).values(
            msisdn=part.msisdn,
            shortcode=part.shortcode,
            reference=part.reference,
            total=part.total,
            part_no=part.number,
            data_coding=part.data_coding,
            data=part.data,
            received_at=now,
        )
    )
    have = conn.execute(select(func.count()).select_from(inbound_parts).where(*_part_key(key), inbound_parts.c.message_id.is_(None))).scalar_one()
    if have < part.total:
        return Received(None)
    return Received(_assemble(conn, key, True, consents, now))


def _unanswered(conn: Connection, msisdn: str, shortcode: str, body: str) -> int | None:
    return conn.execute(
        select(inbound_messages.c.id)
        .where(
            inbound_messages.c.msisdn == msisdn,
            inbound_messages.c.answered_at.is_(None),
            inbound_messages.c.shortcode == shortcode,
            inbound_messages.c.text == body,
        )
        .order_by(inbound_messages.c.id)
        .limit(1)
    ).scalar()


def _answered_since(conn: Connection, msisdn: str, shortcode: str, body: str, since: int) -> bool:
    return (
        conn.execute(
            select(inbound_messages.c.id)
            .where(
                inbound_messages.c.msisdn == msisdn,
                inbound_messages.c.received_at >= since,
                inbound_messages.c.shortcode == shortcode,
                inbound_messages.c.text == body,
            )
            .limit(1)
        ).first()
        is not None
    )


def mark_answered(conn: Connection, ids: Sequence[int], now: int) -> None:
    """The deliver_sm_resp of these messages went out: from now on only the time window
    recognises a resend of them."""
    for start in range(0, len(ids), 500):
        conn.execute(
            update(inbound_messages)
            .where(inbound_messages.c.id.in_(list(ids[start : start + 500])), inbound_messages.c.answered_at.is_(None))
            .values(answered_at=now)
        )


def assemble_stale(conn: Connection, received_before: int, consents: Consents, now: int, limit: int = 100) -> int:
    """Messages whose parts stopped coming: what arrived is stored as the message (marked
    incomplete), so that nothing a subscriber sent is held for ever. Returns how many."""
    # Parts of assembled messages are kept this long only to recognise resent ones.
    conn.execute(delete(inbound_parts).where(inbound_parts.c.message_id.is_not(None), inbound_parts.c.received_at < received_before))
    keys = conn.execute(
        select(inbound_parts.c.msisdn, inbound_parts.c.shortcode, inbound_parts.c.reference, inbound_parts.c.total)
        .where(inbound_parts.c.message_id.is_(None))
        .group_by(inbound_parts.c.msisdn, inbound_parts.c.shortcode, inbound_parts.c.reference, inbound_parts.c.total)
        .having(func.max(inbound_parts.c.received_at) < received_before)
        .limit(limit)
    ).all()
    for key in keys:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(tuple(key))})
        _assemble(conn, tuple(key), False, consents, now)
    return len(keys)


def _part_key(key: tuple) -> list[Any]:
    msisdn, shortcode, reference, total = key
    return [
        inbound_parts.c.msisdn == msisdn,
        inbound_parts.c.shortcode == shortcode,
        inbound_parts.c.reference == reference,
        inbound_parts.c.total == total,
    ]


def _lock_key(key: tuple) -> int:
    # A signed 64-bit number from the message key: collisions only make two messages wait.
    return zlib.crc32("\x00".join(str(k) for k in key).encode()) - 2**31


def _assemble(conn: Connection, key: tuple, complete: bool, consents: Consents, now: int) -> StoredInbound | None:
    pending = [*_part_key(key), inbound_parts.c.message_id.is_(None)]
    rows = conn.execute(select(inbound_parts.c.data_coding, inbound_parts.c.data).where(*pending).order_by(inbound_parts.c.part_no)).all()
    if not rows:
        return None  # another transaction assembled it first
    # The bytes are joined before decoding: a UCS-2 character or a GSM-7 escape may straddle
    # two parts.
    data_coding = rows[0].data_coding
    body = decode(b"".join(bytes(r.data) for r in rows), data_coding)
    msisdn, shortcode, _, _ = key
    stored = _store_message(conn, msisdn, shortcode, body, len(rows), complete, consents, now)
    conn.execute(update(inbound_parts).where(*pending).values(message_id=stored.id, data=b""))
    return stored


def _store_message(
    conn: Connection, msisdn: str, shortcode: str, body: str, parts: int, complete: bool, consents: Consents, now: int
) -> StoredInbound:
    first_words = words(body, 2)
    first = first_words[0] if first_words else None
    consent = consent_of(first, consents.optout_keywords, consents.optin_keywords)
    partner_id, keyword = _route(conn, shortcode, first_words, consent)
    inbound_url = inbound_method = None
    if partner_id is not None:
        inbound_url, inbound_method = conn.execute(select(partners.c.inbound_url, partners.c.inbound_method).where(partners.c.id == partner_id)).one()
    message_id = conn.execute(
        insert(inbound_messages)
        .values(
            shortcode=shortcode,
            msisdn=msisdn,
            text=body,
            partner_id=partner_id,
            keyword=keyword,
            parts=parts,
            complete=int(complete),
            received_at=now,
            next_attempt_at=now if inbound_url else None,
            # A message of parts is known by its parts' keys, never by this mark.
            answered_at=None if parts == 1 and complete else now,
        )
        .returning(inbound_messages.c.id)
    ).scalar_one()
    if partner_id is not None and inbound_method == INBOUND_BY_SMPP:
        conn.execute(insert(smpp_inbound).values(inbound_id=message_id, partner_id=partner_id, next_attempt_at=now))
    if partner_id is not None and consent is not Consent.NONE:
        _apply_consent(conn, partner_id, shortcode, msisdn, consent, now)
    return StoredInbound(message_id, partner_id, consent)


def _route(conn: Connection, shortcode: str, first_words: list[str], consent: Consent) -> tuple[str | None, str | None]:
    """(partner, keyword): the keyword's partner on a shared shortcode, else the shortcode's
    owner (keyword None); (None, None) when nobody owns it. An opt-out or opt-in word on a
    shared shortcode is followed by the keyword it is about ("STOP NEWS")."""
    candidates = first_words[1:2] if consent is not Consent.NONE else first_words[:1]
    if candidates:
        partner_id = conn.execute(
            select(shortcode_keywords.c.partner_id).where(shortcode_keywords.c.shortcode == shortcode, shortcode_keywords.c.keyword == candidates[0])
        ).scalar()
        if partner_id is not None:
            return partner_id, candidates[0]
    owner = conn.execute(select(shortcodes.c.partner_id).where(shortcodes.c.shortcode == shortcode)).scalar()
    return owner, None


def _apply_consent(conn: Connection, partner_id: str, shortcode: str, msisdn: str, consent: Consent, now: int) -> None:
    if consent is Consent.OPT_IN:
        # START lifts the opt-out of this shortcode, and one of all shortcodes (STOPALL).
        optout.remove(conn, partner_id, [shortcode, ALL_SHORTCODES], [msisdn])
    else:
        optout.add(conn, partner_id, ALL_SHORTCODES if consent is Consent.OPT_OUT_ALL else shortcode, [msisdn], "keyword", now)


# -- forwards to partners ------------------------------------------------------------------------


@dataclass(frozen=True)
class DueForward:
    id: int
    partner_id: str
    shortcode: str
    msisdn: str
    text: str
    keyword: str | None
    attempts: int
    created_at: int  # when it was received: a forward still failing long after is given up
    url: str | None  # None: the partner removed its endpoint since it was queued
    method: str
    secret: str | None
    auto_reply: bool
    allow_private: bool = False

    def payload(self) -> dict[str, str]:
        """The contract's payloads: dedicated {shortcode, mobile, message}; shared (routed by
        keyword) {shortcode, msisdn, message, partnerId}."""
        if self.keyword is None:
            return {"shortcode": self.shortcode, "mobile": self.msisdn, "message": self.text}
        return {"shortcode": self.shortcode, "msisdn": self.msisdn, "message": self.text, "partnerId": self.partner_id}


def claim_forwards(conn: Connection, now: int, limit: int, lease_ms: int) -> list[DueForward]:
    due = (
        select(inbound_messages.c.id)
        .where(
            inbound_messages.c.forwarded_at.is_(None),
            inbound_messages.c.next_attempt_at <= now,
            or_(inbound_messages.c.lease_until.is_(None), inbound_messages.c.lease_until < now),
        )
        .order_by(inbound_messages.c.next_attempt_at, inbound_messages.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = (
        conn.execute(
            update(inbound_messages)
            .where(inbound_messages.c.id.in_(due.scalar_subquery()))
            .values(lease_until=now + lease_ms)
            .returning(inbound_messages.c.id)
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    rows = conn.execute(
        select(
            inbound_messages.c.id,
            inbound_messages.c.partner_id,
            inbound_messages.c.shortcode,
            inbound_messages.c.msisdn,
            inbound_messages.c.text,
            inbound_messages.c.keyword,
            inbound_messages.c.attempts,
            inbound_messages.c.received_at,
            partners.c.inbound_url,
            partners.c.inbound_method,
            partners.c.callback_secret,
            partners.c.inbound_auto_reply,
            partners.c.callback_allow_private,
        )
        .join(partners, partners.c.id == inbound_messages.c.partner_id)
        .where(inbound_messages.c.id.in_(list(ids)))
        .order_by(inbound_messages.c.id)
    ).all()
    return [
        DueForward(
            r.id,
            r.partner_id,
            r.shortcode,
            r.msisdn,
            r.text,
            r.keyword,
            r.attempts,
            r.received_at,
            r.inbound_url or None,
            r.inbound_method or "POST",
            r.callback_secret,
            bool(r.inbound_auto_reply),
            bool(r.callback_allow_private),
        )
        for r in rows
    ]


def record_forwards(
    conn: Connection, delivered: Sequence[int], failed: Sequence[tuple[int, int, str]], given_up: Sequence[tuple[int, int, str]], now: int
) -> None:
    """Outcomes of forwards: delivered ids, (id, next attempt at, error) to retry, (id,
    attempts, reason) not tried again (the message stays in getinbox)."""
    if delivered:
        conn.execute(
            update(inbound_messages)
            .where(inbound_messages.c.id.in_(list(delivered)))
            .values(forwarded_at=now, lease_until=None, last_error=None, attempts=inbound_messages.c.attempts + 1)
        )
    for forward_id, next_at, error in failed:
        conn.execute(
            update(inbound_messages)
            .where(inbound_messages.c.id == forward_id)
            .values(next_attempt_at=next_at, last_error=error[:200], lease_until=None, attempts=inbound_messages.c.attempts + 1)
        )
    for forward_id, attempts, reason in given_up:
        conn.execute(
            update(inbound_messages)
            .where(inbound_messages.c.id == forward_id)
            .values(next_attempt_at=None, last_error=reason[:200], lease_until=None, attempts=attempts)
        )


def record_and_claim_forwards(
    conn: Connection,
    delivered: Sequence[int],
    failed: Sequence[tuple[int, int, str]],
    given_up: Sequence[tuple[int, int, str]],
    now: int,
    limit: int,
    lease_ms: int,
    stale_before: int,
    consents: Consents,
) -> list[DueForward]:
    """The forwarder's one transaction per round: outcomes of the forwards that ended, the
    messages whose missing parts never came assembled from what did, then the next claim."""
    record_forwards(conn, delivered, failed, given_up, now)
    if limit <= 0:
        return []
    assemble_stale(conn, stale_before, consents, now)
    return claim_forwards(conn, now, limit, lease_ms)


def record_reply(conn: Connection, inbound_id: int, message_id: int) -> None:
    conn.execute(update(inbound_messages).where(inbound_messages.c.id == inbound_id).values(reply_id=message_id))


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxEntry:
    id: int
    shortcode: str
    msisdn: str
    text: str
    keyword: str | None
    parts: int
    complete: bool
    received_at: int
    forwarded_at: int | None


def inbox(conn: Connection, partner_id: str | None, after_id: int, limit: int) -> list[InboxEntry]:
    """The partner's inbound messages with ids above `after_id`, oldest first (partner None:
    the unrouted ones, for the operator)."""
    owner = inbound_messages.c.partner_id.is_(None) if partner_id is None else inbound_messages.c.partner_id == partner_id
    rows = conn.execute(
        select(
            inbound_messages.c.id,
            inbound_messages.c.shortcode,
            inbound_messages.c.msisdn,
            inbound_messages.c.text,
            inbound_messages.c.keyword,
            inbound_messages.c.parts,
            inbound_messages.c.complete,
            inbound_messages.c.received_at,
            inbound_messages.c.forwarded_at,
        )
        .where(owner, inbound_messages.c.id > after_id)
        .order_by(inbound_messages.c.id)
        .limit(limit)
    ).all()
    return [InboxEntry(r.id, r.shortcode, r.msisdn, r.text, r.keyword, r.parts, bool(r.complete), r.received_at, r.forwarded_at) for r in rows]


# -- receipts that say the subscriber blocked the sender ------------------------------------------


def list_blacklisted(conn: Connection, finished: Sequence[int], now: int) -> int:
    """Puts the number of every message in `finished` that ended `SenderName Blacklisted` on
    its partner's list for that shortcode; returns how many numbers were added."""
    if not finished:
        return 0
    added = 0
    ids = sorted(set(finished))
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(messages.c.partner_id, messages.c.shortcode, messages.c.msisdn).where(
                and_(messages.c.id.in_(ids[start : start + 500]), messages.c.state == int(DeliveryState.SENDER_BLACKLISTED))
            )
        ).all()
        for r in rows:
            added += optout.add(conn, r.partner_id, r.shortcode, [r.msisdn], "receipt", now)
    return added


@dataclass(frozen=True)
class Endpoint:
    """Where a partner's inbound messages go: a URL by GET or POST, SMPP (method
    INBOUND_BY_SMPP, no URL), or nowhere (both None)."""

    url: str | None
    method: str | None
    auto_reply: bool


def endpoint(conn: Connection, partner_id: str) -> Endpoint | None:
    row = conn.execute(
        select(partners.c.inbound_url, partners.c.inbound_method, partners.c.inbound_auto_reply).where(partners.c.id == partner_id)
    ).one_or_none()
    return None if row is None else Endpoint(row.inbound_url, row.inbound_method, bool(row.inbound_auto_reply))


def set_endpoint(conn: Connection, partner_id: str, url: str | None, method: str | None, auto_reply: bool) -> None:
    from .errors import NotFound

    changed = conn.execute(
        update(partners).where(partners.c.id == partner_id).values(inbound_url=url, inbound_method=method, inbound_auto_reply=int(auto_reply))
    ).rowcount
    if changed == 0:
        raise NotFound(f"partner {partner_id} does not exist")
