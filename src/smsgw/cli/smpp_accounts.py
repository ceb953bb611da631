"""`smsgw partner smpp-account ...`: partners' accounts on the partner SMPP server."""

from __future__ import annotations

import sys
import time

import click

from ..config import Settings
from ..store import smpp_accounts
from ..store.smpp_accounts import SmppAccount
from ..store.store import Store
from .common import StoreGroup, with_store

# SMPP 3.4 C-octet strings: system_id at most 15 characters, password at most 8.
MAX_SYSTEM_ID_LENGTH = 15
MAX_PASSWORD_LENGTH = 8
DEFAULT_MAX_BINDS = 2
DEFAULT_WINDOW = 10


def check_system_id(system_id: str) -> None:
    if not 1 <= len(system_id) <= MAX_SYSTEM_ID_LENGTH or not system_id.isascii() or not system_id.isprintable() or " " in system_id:
        raise click.BadParameter(f"a system_id has 1 to {MAX_SYSTEM_ID_LENGTH} printable ASCII characters without spaces", param_hint="SYSTEM_ID")


def check_password(password: str) -> None:
    if not 1 <= len(password) <= MAX_PASSWORD_LENGTH or not password.isascii() or not password.isprintable():
        raise click.BadParameter(f"an SMPP password has 1 to {MAX_PASSWORD_LENGTH} printable ASCII characters (SMPP 3.4)", param_hint="password")


@click.group("smpp-account", cls=StoreGroup)
def smpp_account() -> None:
    """Accounts partners bind to the partner SMPP server with (`smsgw serve --smpp-port`)."""


@smpp_account.command("add")
@click.argument("partner_id")
@click.argument("system_id")
@click.option("--max-binds", type=click.IntRange(1, 100), default=DEFAULT_MAX_BINDS, show_default=True, help="Binds the account may hold at once.")
@click.option("--window", type=click.IntRange(1, 1000), default=DEFAULT_WINDOW, show_default=True, help="Unanswered submit_sm one bind may have.")
@click.option("--tps", type=click.IntRange(1, 1_000_000), default=None, help="submit_sm per second over all the account's binds (default: no limit).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input instead of a prompt.")
@with_store
async def smpp_account_add(
    store: Store, settings: Settings, partner_id: str, system_id: str, max_binds: int, window: int, tps: int | None, password_stdin: bool
) -> None:
    """Give PARTNER_ID an SMPP account; its binds send as the partner, from its shortcodes."""
    check_system_id(system_id)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    check_password(password)
    hasher = await store.api_key_hasher(settings.api_key_secret)
    account = SmppAccount(system_id, partner_id, hasher.hash(password), max_binds, window, tps)
    await store.write(smpp_accounts.add_account, account, int(time.time() * 1000))
    click.echo(f"SMPP account {system_id} added for {partner_id}: {describe(account)}")


@smpp_account.command("list")
@click.argument("partner_id")
@with_store
async def smpp_account_list(store: Store, _settings: Settings, partner_id: str) -> None:
    """The partner's SMPP accounts, one a line: system_id, then its limits."""
    for account in await store.read(smpp_accounts.list_accounts, partner_id):
        click.echo(f"{account.system_id}\t{describe(account)}")


@smpp_account.command("remove")
@click.argument("system_id")
@with_store
async def smpp_account_remove(store: Store, _settings: Settings, system_id: str) -> None:
    """Remove the account; its binds are refused from their next bind on."""
    await store.write(smpp_accounts.remove_account, system_id)
    click.echo(f"SMPP account {system_id} removed")


def describe(account: SmppAccount) -> str:
    tps = f"{account.tps} submit_sm/s" if account.tps is not None else "no rate limit"
    return f"max binds {account.max_binds}, window {account.window}, {tps}"
