"""What an operator reads about routing: which route carried a message and what it answered."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .schema import message_parts, messages


@dataclass(frozen=True)
class CarriedMessage:
    id: int
    partner_id: str
    msisdn: str
    network_id: int
    state: int
    attempts: int
    route: str | None  # the route that took it (or refused it last); None before any answer
    error: str | None
    carrier_ids: list[str]


def carried_message(conn: Connection, message_id: int) -> CarriedMessage | None:
    row = conn.execute(
        select(
            messages.c.id,
            messages.c.partner_id,
            messages.c.msisdn,
            messages.c.network_id,
            messages.c.state,
            messages.c.attempts,
            messages.c.connector,
            messages.c.error,
        ).where(messages.c.id == message_id)
    ).first()
    if row is None:
        return None
    ids = conn.execute(select(message_parts.c.smsc_message_id).where(message_parts.c.message_id == message_id)).scalars().all()
    return CarriedMessage(*row, carrier_ids=list(ids))
