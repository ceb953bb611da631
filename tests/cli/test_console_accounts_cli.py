"""`smsgw operator create/list/remove` and `smsgw partner portal-password`, run as commands."""

from __future__ import annotations

import contextlib

import pytest
from click.testing import CliRunner

from smsgw.cli.main import main
from smsgw.domain.passwords import verify_password

from ..console.conftest import form_token, signed_in
from ..helpers import LiveServer, Operator, make_settings


def smsgw(tmp_path, database_url: str, *args: str, stdin: str | None = None):
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(main, list(args), input=stdin, env={"SMSGW_DATABASE_URL": database_url})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_operators_are_created_listed_and_removed(tmp_path, database_url):
    assert smsgw(tmp_path, database_url, "migrate").exit_code == 0
    created = smsgw(tmp_path, database_url, "operator", "create", "alice", "--password-stdin", stdin="correct horse battery\n")
    assert created.exit_code == 0, created.output
    assert "operator alice created" in created.output
    prompted = smsgw(tmp_path, database_url, "operator", "create", "bob", stdin="bobs long password\nbobs long password\n")
    assert prompted.exit_code == 0, prompted.output
    listed = smsgw(tmp_path, database_url, "operator", "list")
    assert [line.split("\t")[0] for line in listed.output.splitlines()] == ["alice", "bob"]

    operator = Operator(make_settings(database_url))
    [(stored,)] = operator.sql("SELECT password_hash FROM operators WHERE name = 'alice'")
    assert stored.startswith("scrypt$") and "correct horse battery" not in stored
    assert verify_password("correct horse battery", stored) and not verify_password("correct horse batterY", stored)

    again = smsgw(tmp_path, database_url, "operator", "create", "alice", "--password-stdin", stdin="another password 1\n")
    assert again.exit_code == 1 and "already exists" in again.output

    with LiveServer(make_settings(database_url)) as server, signed_in(server.url, "console", "alice", "correct horse battery") as client:
        assert client.get("/console/partners").status_code == 200
        removed = smsgw(tmp_path, database_url, "operator", "remove", "alice")
        assert removed.exit_code == 0, removed.output
        assert client.get("/console/partners").status_code == 303  # its session ended with it
        token = form_token(client.get("/console/login").text)
        refused = client.post("/console/login", data={"csrf": token, "username": "alice", "password": "correct horse battery"})
        assert refused.status_code == 401
    missing = smsgw(tmp_path, database_url, "operator", "remove", "alice")
    assert missing.exit_code == 1 and "does not exist" in missing.output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["operator", "create", "carol", "--password-stdin"], "short\n", "12 to 1024 characters"),
        (["operator", "create", "carol", "--password-stdin"], "aaaaaaaaaaaaaaaa\n", "5 different characters"),
        (["operator", "create", "no spaces", "--password-stdin"], "long enough password\n", "operator name"),
        (["operator", "create", "carol"], "long enough password\nnot the same one\n", "do not match"),
        (["partner", "portal-password", "ghost", "--password-stdin"], "long enough password\n", "partner ghost does not exist"),
    ],
    ids=["too-short", "one-character", "bad-name", "confirmation-differs", "unknown-partner"],
)
def test_bad_account_input_is_refused(tmp_path, database_url, args, stdin, message):
    assert smsgw(tmp_path, database_url, "migrate").exit_code == 0
    result = smsgw(tmp_path, database_url, *args, stdin=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert Operator(make_settings(database_url)).sql("SELECT count(*) FROM operators") == [(0,)]


def test_a_partner_signs_in_to_the_portal_with_the_password_the_cli_set(tmp_path, database_url):
    settings = make_settings(database_url)
    Operator(settings).partner("acme", shortcode="ACME")
    result = smsgw(tmp_path, database_url, "partner", "portal-password", "acme", "--password-stdin", stdin="acme portal password\n")
    assert result.exit_code == 0, result.output
    with LiveServer(settings) as server, signed_in(server.url, "portal", "acme", "acme portal password") as client:
        assert client.get("/portal/messages").status_code == 200
