"""What the store's delivery modules (queue, outcomes, receipts, callbacks, retention) share:
the states of the messages table as the numbers stored, and the insert that skips rows already
there, whose Core construct differs by dialect.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement

from ..domain.states import DeliveryState
from .prepared import Prepared

SCHEDULED = int(DeliveryState.SCHEDULED)
SENT = int(DeliveryState.SENT_TO_NETWORK)
OPEN_STATES = (SCHEDULED, SENT)
BLACKLISTED = int(DeliveryState.SENDER_BLACKLISTED)
NO_RECEIPT = int(DeliveryState.NO_RECEIPT)


def insert_ignoring_duplicates(table: Table, *columns: str) -> ByDialect:
    def build() -> ClauseElement:
        values: dict[str, Any] = {c: bindparam(c) for c in columns}
        return postgresql.insert(table).values(values).on_conflict_do_nothing()

    def build_sqlite() -> ClauseElement:
        values: dict[str, Any] = {c: bindparam(c) for c in columns}
        return sqlite.insert(table).values(values).on_conflict_do_nothing()

    return ByDialect(Prepared(build), Prepared(build_sqlite))


class ByDialect:
    """Two prepared forms of one statement whose Core construct differs by dialect."""

    def __init__(self, postgres: Prepared, sqlite_form: Prepared) -> None:
        self.postgres = postgres
        self.sqlite = sqlite_form

    def many(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        (self.postgres if conn.dialect.name == "postgresql" else self.sqlite).many(conn, rows)
