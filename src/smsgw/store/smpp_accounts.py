"""Partners' SMPP accounts and what is owed to their binds (the partner SMPP server).

A message accepted over SMPP gets its `smpp_receipts` row in the accepting transaction
(acceptance.py, `_charge_and_store`); once the message is final, its receipt is owed to a receiver
bind of the account until the ESME answers the deliver_sm ESME_ROK. An inbound message of a
partner that takes them over SMPP gets its `smpp_inbound` row in the transaction that
receives it (inbound.py) and is owed to a receiver bind of any of the partner's accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..domain.states import DeliveryState
from .errors import AlreadyExists, NotFound
from .schema import inbound_messages, messages, partners, smpp_accounts, smpp_inbound, smpp_receipts

# A message in one of these states is not final: its receipt is not owed yet.
_OPEN_STATES = (int(DeliveryState.SCHEDULED), int(DeliveryState.SENT_TO_NETWORK))


@dataclass(frozen=True)
class SmppAccount:
    system_id: str
    partner_id: str
    password_hash: str = field(repr=False)
    max_binds: int
    window: int
    tps: int | None


@dataclass(frozen=True)
class OwedReceipt:
    message_id: int
    msisdn: str
    shortcode: str
    text: str
    state: int
    created_at: int
    done_at: int | None
    error: str | None
    attempts: int


def add_account(conn: Connection, account: SmppAccount, now: int) -> None:
    if conn.execute(select(partners.c.id).where(partners.c.id == account.partner_id)).first() is None:
        raise NotFound(f"partner {account.partner_id} does not exist")
    try:
        with conn.begin_nested():
            conn.execute(
                insert(smpp_accounts).values(
                    system_id=account.system_id,
                    partner_id=account.partner_id,
                    password_hash=account.password_hash,
                    max_binds=account.max_binds,
                    window=account.window,
                    tps=account.tps,
                    created_at=now,
                )
            )
    except IntegrityError:
        raise AlreadyExists(f"SMPP account {account.system_id} already exists") from None


def get_account(conn: Connection, system_id: str) -> SmppAccount | None:
    row = conn.execute(select(*_ACCOUNT_COLUMNS).where(smpp_accounts.c.system_id == system_id)).first()
    return SmppAccount(*row) if row is not None else None


def list_accounts(conn: Connection, partner_id: str) -> list[SmppAccount]:
    rows = conn.execute(select(*_ACCOUNT_COLUMNS).where(smpp_accounts.c.partner_id == partner_id).order_by(smpp_accounts.c.system_id)).all()
    return [SmppAccount(*row) for row in rows]


def remove_account(conn: Connection, system_id: str) -> None:
    """Removes the account; receipts still owed to it stay owed, to an account added again
    under the same system_id for the same partner (never another partner's: `owed_receipts`)."""
    if conn.execute(delete(smpp_accounts).where(smpp_accounts.c.system_id == system_id)).rowcount == 0:
        raise NotFound(f"no SMPP account {system_id}")


def owed_receipts(conn: Connection, system_id: str, partner_id: str, now: int, limit: int) -> list[OwedReceipt]:
    """Receipts due now for final messages of the account, oldest message first; only the
    partner's own messages, whatever account once had this system_id."""
    rows = conn.execute(
        select(
            messages.c.id,
            messages.c.msisdn,
            messages.c.shortcode,
            messages.c.text,
            messages.c.state,
            messages.c.created_at,
            messages.c.done_at,
            messages.c.error,
            smpp_receipts.c.attempts,
        )
        .select_from(smpp_receipts.join(messages, messages.c.id == smpp_receipts.c.message_id))
        .where(
            smpp_receipts.c.system_id == system_id,
            messages.c.partner_id == partner_id,
            smpp_receipts.c.delivered_at.is_(None),
            smpp_receipts.c.next_attempt_at <= now,
            messages.c.state.not_in(_OPEN_STATES),
        )
        .order_by(smpp_receipts.c.message_id)
        .limit(limit)
    ).all()
    return [OwedReceipt(*row) for row in rows]


def receipts_delivered(conn: Connection, message_ids: Sequence[int], now: int) -> None:
    conn.execute(update(smpp_receipts).where(smpp_receipts.c.message_id.in_(message_ids)).values(delivered_at=now))


def receipt_refused(conn: Connection, message_id: int, retry_at: int) -> None:
    """The ESME did not take the receipt (an error status, no answer, its bind gone): sent
    again from `retry_at`."""
    conn.execute(
        update(smpp_receipts)
        .where(smpp_receipts.c.message_id == message_id, smpp_receipts.c.delivered_at.is_(None))
        .values(attempts=smpp_receipts.c.attempts + 1, next_attempt_at=retry_at)
    )


@dataclass(frozen=True)
class OwedInbound:
    inbound_id: int
    msisdn: str
    shortcode: str
    text: str
    attempts: int


def owed_inbound(conn: Connection, partner_id: str, now: int, limit: int) -> list[OwedInbound]:
    """The partner's inbound messages due now for its receiver binds, oldest first."""
    rows = conn.execute(
        select(inbound_messages.c.id, inbound_messages.c.msisdn, inbound_messages.c.shortcode, inbound_messages.c.text, smpp_inbound.c.attempts)
        .select_from(smpp_inbound.join(inbound_messages, inbound_messages.c.id == smpp_inbound.c.inbound_id))
        .where(
            smpp_inbound.c.partner_id == partner_id,
            inbound_messages.c.partner_id == partner_id,
            smpp_inbound.c.delivered_at.is_(None),
            smpp_inbound.c.next_attempt_at <= now,
        )
        .order_by(smpp_inbound.c.inbound_id)
        .limit(limit)
    ).all()
    return [OwedInbound(*row) for row in rows]


def inbound_delivered(conn: Connection, inbound_ids: Sequence[int], now: int) -> None:
    """An ESME took these (every part ESME_ROK): forwarded, as the inbox says of HTTP forwards."""
    conn.execute(update(smpp_inbound).where(smpp_inbound.c.inbound_id.in_(inbound_ids)).values(delivered_at=now))
    conn.execute(
        update(inbound_messages)
        .where(inbound_messages.c.id.in_(inbound_ids))
        .values(forwarded_at=now, last_error=None, attempts=inbound_messages.c.attempts + 1)
    )


def inbound_refused(conn: Connection, inbound_id: int, retry_at: int, error: str) -> None:
    """The ESME did not take the message (an error status, no answer, its bind gone): sent
    again from `retry_at`."""
    changed = conn.execute(
        update(smpp_inbound)
        .where(smpp_inbound.c.inbound_id == inbound_id, smpp_inbound.c.delivered_at.is_(None))
        .values(attempts=smpp_inbound.c.attempts + 1, next_attempt_at=retry_at)
    ).rowcount
    if changed:
        conn.execute(
            update(inbound_messages)
            .where(inbound_messages.c.id == inbound_id)
            .values(last_error=error[:200], attempts=inbound_messages.c.attempts + 1)
        )


_ACCOUNT_COLUMNS = (
    smpp_accounts.c.system_id,
    smpp_accounts.c.partner_id,
    smpp_accounts.c.password_hash,
    smpp_accounts.c.max_binds,
    smpp_accounts.c.window,
    smpp_accounts.c.tps,
)
