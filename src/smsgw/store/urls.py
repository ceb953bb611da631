"""`SMSGW_DATABASE_URL`: `sqlite:///PATH` or `postgresql://USER:PASSWORD@HOST:PORT/DB`.
The gateway chooses the driver itself: the standard library's sqlite3 (run in threads, see
store/database.py) or asyncpg."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DEFAULT_DATABASE_URL = "sqlite:///./smsgw.db"


class BadDatabaseUrl(ValueError):
    pass


def _sqlalchemy_url(raw: str) -> URL:
    # SQLAlchemy is imported when a URL is read, not with this module: the client commands
    # import the settings (and so this module) and never open a store.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(raw)
    except ArgumentError:
        raise BadDatabaseUrl("SMSGW_DATABASE_URL is not a database URL; use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB") from None


@dataclass(frozen=True)
class StoreUrl:
    raw: str = field(repr=False)
    sqlalchemy_url: str = field(repr=False)
    is_sqlite: bool

    @classmethod
    def parse(cls, raw: str) -> StoreUrl:
        url = _sqlalchemy_url(raw)
        backend = url.get_backend_name()
        if backend == "sqlite":
            if not url.database or url.database == ":memory:":
                raise BadDatabaseUrl("SMSGW_DATABASE_URL must name a SQLite file (sqlite:///PATH); an in-memory database would lose every message")
            return cls(raw, url.set(drivername="sqlite+pysqlite").render_as_string(hide_password=False), True)
        if backend in ("postgresql", "postgres"):
            return cls(raw, url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False), False)
        raise BadDatabaseUrl(f"SMSGW_DATABASE_URL scheme {backend!r} is not supported; use sqlite:///PATH or postgresql://...")

    def __repr__(self) -> str:
        return f"StoreUrl({self.display!r})"

    @property
    def display(self) -> str:
        """The URL with any password masked, for logs and banners."""
        return _sqlalchemy_url(self.raw).render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> str | None:
        return _sqlalchemy_url(self.raw).database if self.is_sqlite else None
