from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from smsgw.store.store import Store
from smsgw.store.urls import StoreUrl

from .helpers import Gateway, LiveServer, Operator, make_settings
from .postgres import PostgresUnavailable, start_cluster

TEMPLATE = "smsgw_template"


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL server for the session, with a template database at the current schema."""
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        if os.environ.get("SMSGW_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required (SMSGW_REQUIRE_POSTGRES) but unavailable: {exc}")
        pytest.skip(f"PostgreSQL tests need PostgreSQL binaries or SMSGW_TEST_POSTGRES_URL: {exc}")
    try:
        asyncio.run(_recreate(cluster.url, TEMPLATE, template=None))
        asyncio.run(_migrate(_database_url(cluster.url, TEMPLATE)))
        yield cluster
    finally:
        cluster.stop()


def _database_url(maintenance_url: str, name: str) -> str:
    return maintenance_url.rsplit("/", 1)[0] + "/" + name


async def _admin(maintenance_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(maintenance_url.replace("postgresql://", "postgres://", 1))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _recreate(maintenance_url: str, name: str, template: str | None) -> None:
    source = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
    await _admin(maintenance_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}{source}")


async def _migrate(url: str) -> None:
    store = Store.open(StoreUrl.parse(url))
    try:
        await store.migrate()
    finally:
        await store.close()


def _fresh_postgres_database(cluster) -> Iterator[str]:
    name = f"smsgw_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_recreate(cluster.url, name, template=TEMPLATE))
    yield _database_url(cluster.url, name)
    asyncio.run(_admin(cluster.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite store at the current schema, copied for each test: migrating a new file
    takes half a second, copying it a millisecond. tests/store/test_migrations.py migrates
    from nothing."""
    path = tmp_path_factory.mktemp("template") / "smsgw.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Every test that touches the store runs once on each store."""
    if request.param == "sqlite":
        path = tmp_path / "smsgw.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    yield from _fresh_postgres_database(request.getfixturevalue("postgres_cluster"))


@pytest.fixture
def postgres_url(postgres_cluster):
    """A fresh PostgreSQL store, for what only PostgreSQL has (a networked COMMIT, several
    machines)."""
    yield from _fresh_postgres_database(postgres_cluster)


@pytest.fixture
def settings(database_url):
    return make_settings(database_url)


@pytest.fixture
def operator(settings):
    return Operator(settings)


@pytest.fixture
def gateway(settings, operator):
    """A real gateway on loopback with partner p1 (shortcode SC1, 1000 units)."""
    operator.partner("p1", shortcode="SC1")
    with LiveServer(settings) as server, httpx.Client(timeout=30) as client:
        yield Gateway(server, operator, client)
