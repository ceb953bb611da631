"""What the commands that open the store share: errors as one line on stderr, the settings,
the store opened (and closed) around an async command body, and --help naming the store."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from ..config import ConfigError, Settings
from ..store.errors import AlreadyExists, NotFound, SchemaOutOfDate, StoreUnavailable
from ..store.store import open_store
from ..store.urls import DEFAULT_DATABASE_URL

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        fail(str(exc), 2)


def require_existing_store(settings: Settings) -> None:
    """Only `serve` and `migrate` create a store: any other command run in the wrong
    directory must say so, not answer from a new empty database."""
    path = settings.database_url.sqlite_path
    if path is not None and not Path(path).exists():
        fail(
            f"no store at {Path(path).resolve()} (SMSGW_DATABASE_URL={settings.database_url.display}): "
            "run this where the gateway's database is, set SMSGW_DATABASE_URL to it, or create one with `smsgw migrate`"
        )


class StoreCommand(click.Command):
    """A command whose --help names the store it would use."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        if getattr(self.callback, "uses_store", False):
            try:
                where = Settings.from_env().database_url.display
            except ConfigError as exc:
                where = f"none usable ({exc})"
            formatter.write_paragraph()
            formatter.write_text(f"Store: {where} (SMSGW_DATABASE_URL; default {DEFAULT_DATABASE_URL}).")


class StoreGroup(click.Group):
    command_class = StoreCommand


StoreGroup.group_class = StoreGroup


def with_store(operation: Callable[..., Awaitable[T]] | None = None, *, prepare: bool = True, creates: bool = False) -> Any:
    """Runs an async command body with an open store (brought up to date unless `prepare`
    is False) and clean error messages. Unless `creates`, the store must exist already."""
    if operation is None:
        return functools.partial(with_store, prepare=prepare, creates=creates)

    @functools.wraps(operation)
    def run(*args: Any, **kwargs: Any) -> T:
        settings = load_settings()
        if not creates:
            require_existing_store(settings)

        async def body() -> T:
            store = open_store(settings)
            try:
                if prepare:
                    await store.prepare()
                return await operation(store, settings, *args, **kwargs)
            finally:
                await store.close()

        try:
            return asyncio.run(body())
        except StoreUnavailable as exc:
            fail(f"the database at {settings.database_url.display} is unavailable: {exc}")
        except SchemaOutOfDate as exc:
            fail(str(exc))
        except (NotFound, AlreadyExists, ValueError) as exc:
            fail(str(exc))
        raise AssertionError  # unreachable

    run.uses_store = True  # type: ignore[attr-defined]
    return run
