"""Core statements compiled once per database and run with plain tuples.

Building a SQLAlchemy statement, computing its cache key and processing its parameters costs
more than SQLite needs to run it. Delivery runs a handful of statements per batch thousands of
times a second, so its hot statements are written in Core as usual, compiled once per dialect
here, and executed through the driver with tuples in the compiled parameter order.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import BindParameter


class Prepared:
    def __init__(self, build: Callable[[], ClauseElement]) -> None:
        self._build = build
        self._compiled: dict[str, tuple[str, list[str], dict[str, Any]]] = {}

    def _for(self, conn: Connection) -> tuple[str, list[str], dict[str, Any]]:
        name = conn.dialect.name
        entry = self._compiled.get(name)
        if entry is None:
            compiled = self._build().compile(dialect=conn.dialect)
            # positiontup: the order of a positional dialect's parameters (SQLCompiler's)
            entry = (str(compiled), list(getattr(compiled, "positiontup", None) or []), dict(compiled.params))
            self._compiled[name] = entry
        return entry

    def many(self, conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
        """executemany with one parameter dict per row (bound names as keys), straight on
        the transaction's DBAPI cursor."""
        sql, order, defaults = self._for(conn)
        params = [tuple(row[k] if k in row else defaults[k] for k in order) for row in rows]
        if params:
            with _wrapped_errors(conn, sql) as cursor:
                cursor.executemany(sql, params)

    def all(self, conn: Connection, **values: Any) -> list[tuple[Any, ...]]:
        """The rows of a query, as tuples, straight from the transaction's DBAPI cursor."""
        sql, order, defaults = self._for(conn)
        with _wrapped_errors(conn, sql) as cursor:
            cursor.execute(sql, tuple(values[k] if k in values else defaults[k] for k in order))
            return list(cursor.fetchall())


@contextlib.contextmanager
def _wrapped_errors(conn: Connection, sql: str) -> Iterator[Any]:
    """A DBAPI cursor of the transaction whose errors come out as SQLAlchemy's (so that
    "database is locked" is an OperationalError like anywhere else in the store)."""
    cursor = conn.connection.cursor()
    try:
        yield cursor
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True, dialect=conn.dialect) from exc
    finally:
        cursor.close()


class PreparedIn:
    """A statement with one `IN (...)` list, compiled per list size. Sizes are rounded up to a
    power of two (the list padded with its first value), so a few compiled forms serve every
    batch."""

    def __init__(self, build: Callable[[list[Any]], ClauseElement], chunk: int = 512) -> None:
        self._build = build
        self._chunk = chunk
        self._sizes: dict[int, Prepared] = {}

    def rows(self, conn: Connection, values: Sequence[Any], **extra: Any) -> list[Any]:
        from sqlalchemy import bindparam

        out: list[Any] = []
        for start in range(0, len(values), self._chunk):
            part = list(values[start : start + self._chunk])
            size = 1
            while size < len(part):
                size *= 2
            prepared = self._sizes.get(size)
            if prepared is None:
                names: list[BindParameter[Any]] = [bindparam(f"in_{i}") for i in range(size)]
                prepared = self._sizes[size] = Prepared(functools.partial(self._build, names))
            padded = part + [part[0]] * (size - len(part))
            params = {f"in_{i}": value for i, value in enumerate(padded)}
            params.update(extra)
            out.extend(prepared.all(conn, **params))
        return out
