"""`smsgw partner smpp-account add/list/remove`."""

from __future__ import annotations

import asyncio

import pytest

from smsgw.config import Settings
from smsgw.store import smpp_accounts
from smsgw.store.store import Store
from smsgw.store.urls import StoreUrl

from .test_operator_cli import smsgw


def stored_account(database_url: str, system_id: str) -> smpp_accounts.SmppAccount | None:
    async def read() -> smpp_accounts.SmppAccount | None:
        store = Store.open(StoreUrl.parse(database_url))
        try:
            return await store.read(smpp_accounts.get_account, system_id)
        finally:
            await store.close()

    return asyncio.run(read())


def verifies(database_url: str, password: str, stored: str) -> bool:
    async def check() -> bool:
        store = Store.open(StoreUrl.parse(database_url))
        try:
            hasher = await store.api_key_hasher(Settings.from_env({"SMSGW_DATABASE_URL": database_url}).api_key_secret)
        finally:
            await store.close()
        return hasher.verify(password, stored)

    return asyncio.run(check())


@pytest.fixture
def with_partner(tmp_path, database_url):
    assert smsgw(tmp_path, database_url, "migrate").returncode == 0
    assert smsgw(tmp_path, database_url, "partner", "create", "acme").returncode == 0
    return tmp_path


def test_add_list_remove(with_partner, database_url):
    added = smsgw(
        with_partner,
        database_url,
        "partner",
        "smpp-account",
        "add",
        "acme",
        "acme_tx",
        "--max-binds",
        "3",
        "--window",
        "20",
        "--tps",
        "50",
        "--password-stdin",
        input="s3cret!\n",
    )
    assert added.returncode == 0, added.stderr
    assert "s3cret!" not in added.stdout
    account = stored_account(database_url, "acme_tx")
    assert account is not None and (account.partner_id, account.max_binds, account.window, account.tps) == ("acme", 3, 20, 50)
    assert "s3cret!" not in account.password_hash and verifies(database_url, "s3cret!", account.password_hash)
    assert not verifies(database_url, "s3cret?", account.password_hash)
    prompted = smsgw(with_partner, database_url, "partner", "smpp-account", "add", "acme", "acme_rx", input="pw12\npw12\n")
    assert prompted.returncode == 0, prompted.stderr
    listing = smsgw(with_partner, database_url, "partner", "smpp-account", "list", "acme").stdout.splitlines()
    assert listing == ["acme_rx\tmax binds 2, window 10, no rate limit", "acme_tx\tmax binds 3, window 20, 50 submit_sm/s"]
    assert smsgw(with_partner, database_url, "partner", "smpp-account", "remove", "acme_tx").returncode == 0
    assert stored_account(database_url, "acme_tx") is None
    gone = smsgw(with_partner, database_url, "partner", "smpp-account", "remove", "acme_tx")
    assert gone.returncode == 1 and "no SMPP account acme_tx" in gone.stderr


@pytest.mark.parametrize(
    ("args", "password", "exit_code", "message"),
    [
        (("acme", "acme_tx"), "toolongpw", 2, "1 to 8 printable ASCII"),
        (("acme", "acme_tx"), "", 2, "1 to 8 printable ASCII"),
        (("acme", "a" * 16), "pw", 2, "1 to 15 printable ASCII"),
        (("acme", "has space"), "pw", 2, "without spaces"),
        (("ghost", "ghost_tx"), "pw", 1, "partner ghost does not exist"),
    ],
    ids=["password-too-long", "password-empty", "system-id-too-long", "system-id-with-space", "unknown-partner"],
)
def test_refused_accounts(with_partner, database_url, args, password, exit_code, message):
    result = smsgw(with_partner, database_url, "partner", "smpp-account", "add", *args, "--password-stdin", input=password + "\n")
    assert result.returncode == exit_code and message in result.stderr and "Traceback" not in result.stderr
    assert stored_account(database_url, args[1]) is None


def test_a_system_id_is_taken_once(with_partner, database_url):
    assert smsgw(with_partner, database_url, "partner", "create", "other").returncode == 0
    assert smsgw(with_partner, database_url, "partner", "smpp-account", "add", "acme", "shared", "--password-stdin", input="pw1\n").returncode == 0
    again = smsgw(with_partner, database_url, "partner", "smpp-account", "add", "other", "shared", "--password-stdin", input="pw2\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert stored_account(database_url, "shared").partner_id == "acme"
