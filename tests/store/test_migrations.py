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
