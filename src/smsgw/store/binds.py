"""Sharing SMSC binds among dispatcher processes.

A carrier allows a few binds per account and a TPS per bind. Each `--smsc` connection (by
name) is bound by exactly one dispatcher at a time, the holder of its lease; dispatchers
heartbeat, share the connections out evenly (each holds at most ceil(connections / live
dispatchers)), and take over the connections of one that stopped renewing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .schema import bind_leases, dispatchers, route_reports

RELEASE_GRACE_MS = 5_000


@dataclass(frozen=True)
class BindPlan:
    """What a dispatcher should hold after one round of coordination."""

    held: frozenset[str]
    live_dispatchers: int


@dataclass(frozen=True)
class RouteReport:
    """What a dispatcher says of a route it holds (see schema.route_reports)."""

    route: str
    kind: str
    networks: str | None
    priority: int
    weight: int
    state: str
    bound: bool
    accepted: int
    accepted_recent: int
    failovers: int
    since: int


def coordinate(conn: Connection, owner: str, connectors: Sequence[str], now: int, ttl_ms: int, reports: Sequence[RouteReport] = ()) -> BindPlan:
    """One round: heartbeat, renew this owner's leases, give back any above its fair share,
    and take free or expired ones up to it; the reports of the routes it held go in the same
    transaction. Returns the connections this owner now holds."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    if reports:
        rows = [{**vars(report), "owner": owner, "reported_at": now} for report in reports]
        statement = insert(route_reports).values(rows)
        replaced = {column: statement.excluded[column] for column in rows[0] if column != "route"}
        conn.execute(statement.on_conflict_do_update(index_elements=["route"], set_=replaced))
    conn.execute(insert(dispatchers).values(owner=owner, seen_at=now).on_conflict_do_update(index_elements=["owner"], set_={"seen_at": now}))
    conn.execute(delete(dispatchers).where(dispatchers.c.seen_at < now - 10 * ttl_ms))
    live = conn.execute(select(func.count()).select_from(dispatchers).where(dispatchers.c.seen_at >= now - ttl_ms)).scalar_one()
    share = math.ceil(len(connectors) / max(1, live))

    conn.execute(
        update(bind_leases).where(bind_leases.c.owner == owner, bind_leases.c.connector.in_(list(connectors))).values(lease_until=now + ttl_ms)
    )
    held = sorted(
        conn.execute(select(bind_leases.c.connector).where(bind_leases.c.owner == owner, bind_leases.c.connector.in_(list(connectors)))).scalars()
    )
    for extra in held[share:]:
        # Given back, but free only after a grace period: time for this dispatcher to unbind
        # before another binds, so the carrier never sees one bind too many.
        conn.execute(
            update(bind_leases)
            .where(bind_leases.c.connector == extra, bind_leases.c.owner == owner)
            .values(owner="", lease_until=now + RELEASE_GRACE_MS)
        )
    held = held[:share]

    if len(held) < share:
        conn.execute(insert(bind_leases).values([{"connector": c, "owner": "", "lease_until": 0} for c in connectors]).on_conflict_do_nothing())
        for connector in connectors:
            if len(held) >= share:
                break
            if connector in held:
                continue
            # A lease that ran out is taken over only half a lease later: its holder, if
            # merely slow, has that long to notice and unbind (Dispatcher._unbind_unconfirmed).
            taken = conn.execute(
                update(bind_leases)
                .where(bind_leases.c.connector == connector, bind_leases.c.lease_until < now - ttl_ms // 2)
                .values(owner=owner, lease_until=now + ttl_ms)
            ).rowcount
            if taken:
                held.append(connector)
    return BindPlan(frozenset(held), live)


def release_all(conn: Connection, owner: str) -> None:
    """A dispatcher stopping cleanly: its connections are free at once, not after the lease."""
    conn.execute(delete(bind_leases).where(bind_leases.c.owner == owner))
    conn.execute(delete(dispatchers).where(dispatchers.c.owner == owner))
    conn.execute(update(route_reports).where(route_reports.c.owner == owner).values(state="down", bound=False, accepted_recent=0))


def lease_holders(conn: Connection) -> dict[str, tuple[str, int]]:
    return {row.connector: (row.owner, row.lease_until) for row in conn.execute(select(bind_leases))}


def route_report_rows(conn: Connection) -> list[Any]:
    """Every route a dispatcher has reported, by network priority then name."""
    return list(conn.execute(select(route_reports).order_by(route_reports.c.priority, route_reports.c.route)).all())
