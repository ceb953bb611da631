"""Alembic migrations create exactly the schema the code queries (store/schema.py), on both
stores, from an empty database."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from smsgw.store.migrate import head_revision
from smsgw.store.schema import metadata
from smsgw.store.store import Store
from smsgw.store.urls import StoreUrl

from ..conftest import _admin, _database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    cluster = request.getfixturevalue("postgres_cluster")
    name = f"smsgw_empty_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(cluster.url, f"CREATE DATABASE {name}"))
    yield _database_url(cluster.url, name)
    asyncio.run(_admin(cluster.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_migrated_schema_matches_the_metadata(empty_database):
    async def differences():
        store = Store.open(StoreUrl.parse(empty_database))
        try:
            await store.migrate()
            await store.migrate()  # a second run is a no-op

            def compare(conn):
                context = MigrationContext.configure(conn)
                return context.get_current_revision(), compare_metadata(context, metadata)

            return await store.read(compare)
        finally:
            await store.close()

    revision, diff = asyncio.run(differences())
    assert revision == head_revision()
    assert diff == []


def test_an_old_schema_is_refused_until_migrated(empty_database):
    async def scenario():
        store = Store.open(StoreUrl.parse(empty_database))
        try:
            if store.is_sqlite:
                await store.prepare()  # the embedded store migrates itself
                return await store.read(lambda conn: MigrationContext.configure(conn).get_current_revision())
            from smsgw.store.errors import SchemaOutOfDate

            with pytest.raises(SchemaOutOfDate, match="smsgw migrate"):
                await store.prepare()
            await store.migrate()
            await store.prepare()
            return head_revision()
        finally:
            await store.close()

    assert asyncio.run(scenario()) == head_revision()


def test_the_upgrade_from_0015_indexes_and_counts_the_messages_stored_and_drops_their_console_indexes(empty_database):
    from alembic import command
    from sqlalchemy import inspect, text

    from smsgw.store.migrate import alembic_config

    hour = 3600_000
    stored = [
        (
            10_000_000 + i,
            "acme" if i % 3 else "rival",
            f"25471{i % 4:07d}",
            1 + i % 2,
            1 + i % 3,
            100 * (1 + i % 3),
            1_700_000_000_000 + (i % 5) * hour + i,
        )
        for i in range(60)
    ]

    async def scenario():
        store = Store.open(StoreUrl.parse(empty_database))
        try:
            await store.write(lambda conn: command.upgrade(alembic_config(conn), "0015"))

            def fill(conn):
                for mid, partner, number, network, parts, cost, created in stored:
                    conn.execute(
                        text(
                            "INSERT INTO messages (id, partner_id, shortcode, msisdn, network_id, text, data_coding, parts, cost, priority, state,"
                            " due_at, created_at, batch_id) VALUES (:id, :p, 'SC', :n, :net, 'x', 0, :parts, :cost, 1, 3, :t, :t, :id)"
                        ),
                        {"id": mid, "p": partner, "n": number, "net": network, "parts": parts, "cost": cost, "t": created},
                    )

            await store.write(fill)
            await store.migrate()

            def read(conn):
                numbers = conn.execute(text("SELECT msisdn, partner_id, message_id FROM message_numbers ORDER BY message_id")).all()
                rolled = conn.execute(text("SELECT hour, partner_id, network_id, messages, parts, cost FROM message_rollups")).all()
                mark = conn.execute(text("SELECT next_id FROM roll_marks WHERE name = 'messages'")).scalar_one()
                indexes = {index["name"] for index in inspect(conn).get_indexes("messages")}
                return [tuple(r) for r in numbers], {(int(r[0]), r[1], int(r[2])): tuple(int(v) for v in r[3:]) for r in rolled}, int(mark), indexes

            return await store.read(read)
        finally:
            await store.close()

    numbers, rolled, mark, indexes = asyncio.run(scenario())
    assert numbers == [(number, partner, mid) for mid, partner, number, *_ in stored]
    expected: dict[tuple[int, str, int], list[int]] = {}
    for _, partner, _, network, parts, cost, created in stored:
        total = expected.setdefault((created // hour * hour, partner, network), [0, 0, 0])
        total[0] += 1
        total[1] += parts
        total[2] += cost
    assert rolled == {key: tuple(value) for key, value in expected.items()}
    assert mark == stored[-1][0] + 1
    assert "ix_messages_msisdn" not in indexes and "ix_messages_partner" not in indexes
    assert "ix_messages_due" in indexes


def test_the_upgrade_from_0020_counts_the_outcomes_of_the_messages_stored(empty_database):
    """Migration 0021 counts each stored message's submit (at submitted_at) and final state (at
    done_at) as the gateway counts them as they happen; open messages count no final state."""
    from alembic import command
    from sqlalchemy import text

    from smsgw.store.migrate import alembic_config

    hour = 3600_000
    start = 1_700_000_000_000
    # (state, connector, submitted, done): delivered, failed at the carrier, refused before any
    # carrier took it, still waiting for a receipt, still scheduled, cancelled.
    kinds = [
        (3, "smsc-a", True, True),
        (5, "smsc-b", True, True),
        (5, None, False, True),
        (2, "smsc-a", True, False),
        (1, None, False, False),
        (9, None, False, True),
    ]
    stored = []
    for i in range(60):
        state, connector, submitted, done = kinds[i % len(kinds)]
        created = start + (i % 4) * hour
        stored.append(
            (
                10_000 + i,
                "acme" if i % 2 else "rival",
                1 + i % 3,
                1 + i % 2,
                state,
                connector,
                created + 600_000 if submitted else None,
                created + 2 * hour if done else None,
            )
        )

    async def scenario():
        store = Store.open(StoreUrl.parse(empty_database))
        try:
            await store.write(lambda conn: command.upgrade(alembic_config(conn), "0020"))

            def fill(conn):
                for mid, partner, network, parts, state, connector, submitted_at, done_at in stored:
                    conn.execute(
                        text(
                            "INSERT INTO messages (id, partner_id, shortcode, msisdn, network_id, text, data_coding, parts, cost, priority, state,"
                            " due_at, created_at, batch_id, connector, submitted_at, done_at)"
                            " VALUES (:id, :p, 'SC', '254712345678', :net, 'x', 0, :parts, 100, 1, :state, 0, 0, :id, :c, :s, :d)"
                        ),
                        {"id": mid, "p": partner, "net": network, "parts": parts, "state": state, "c": connector, "s": submitted_at, "d": done_at},
                    )

            await store.write(fill)
            await store.migrate()
            return await store.read(
                lambda conn: conn.execute(text("SELECT hour, partner_id, network_id, smsc, state, messages, parts FROM outcome_rollups")).all()
            )
        finally:
            await store.close()

    found = {(int(r[0]), r[1], int(r[2]), r[3], int(r[4])): (int(r[5]), int(r[6])) for r in asyncio.run(scenario())}
    expected: dict[tuple, list[int]] = {}
    for _, partner, network, parts, state, connector, submitted_at, done_at in stored:
        moves = ([(submitted_at, 2)] if submitted_at else []) + ([(done_at, state)] if state not in (1, 2) else [])
        for at, moved_to in moves:
            total = expected.setdefault((at // hour * hour, partner, network, connector or "", moved_to), [0, 0])
            total[0] += 1
            total[1] += parts
    assert found == {key: tuple(value) for key, value in expected.items()}
