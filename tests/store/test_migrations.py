"""Alembic migrations create exactly the schema the code queries (store/schema.py)."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from smsgw.store.migrate import head_revision
from smsgw.store.schema import metadata
from smsgw.store.store import Store
from smsgw.store.urls import StoreUrl


def test_migrated_schema_matches_the_metadata(tmp_path):
    async def differences():
        store = Store.open(StoreUrl.parse(f"sqlite:///{tmp_path / 'm.db'}"))
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
