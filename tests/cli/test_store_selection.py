"""Which store a command uses, and that only `serve` and `migrate` create one (CliRunner)."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from smsgw.cli.main import main


@pytest.fixture
def runner(tmp_path, monkeypatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSGW_DATABASE_URL", raising=False)
    return CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["status"], id="status"),
        pytest.param(["partner", "show", "acme"], id="partner-show"),
        pytest.param(["partner", "create", "acme"], id="partner-create"),
        pytest.param(["partner", "topup", "acme", "10"], id="partner-topup"),
        pytest.param(["partner", "rotate-key", "demo"], id="rotate-key"),
        pytest.param(["shortcode", "add", "ACME", "--partner", "acme"], id="shortcode-add"),
    ],
)
def test_a_command_away_from_the_store_fails_naming_it_and_creates_nothing(runner, tmp_path, args):
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert f"no store at {tmp_path / 'smsgw.db'}" in result.output and "SMSGW_DATABASE_URL" in result.output
    assert list(tmp_path.iterdir()) == []


def test_migrate_creates_the_store_and_then_the_others_use_it(runner, tmp_path):
    created = runner.invoke(main, ["migrate"])
    assert created.exit_code == 0 and "sqlite:///./smsgw.db" in created.output
    assert (tmp_path / "smsgw.db").exists()
    assert runner.invoke(main, ["partner", "create", "acme"]).exit_code == 0
    shown = runner.invoke(main, ["partner", "show", "acme"])
    assert shown.exit_code == 0 and "store:      sqlite:///./smsgw.db" in shown.output


def test_help_names_the_store_without_its_password(runner):
    result = runner.invoke(
        main, ["partner", "show", "--help"], env={"SMSGW_DATABASE_URL": "postgresql://smsgw:hunter2secret@db.internal:5432/gateway"}
    )
    assert result.exit_code == 0
    assert "Store: postgresql://smsgw:***@db.internal:5432/gateway" in result.output and "hunter2secret" not in result.output
    assert "Store:" not in runner.invoke(main, ["smsc-sim", "--help"]).output  # needs no store


def test_serve_on_a_taken_port_stops_before_touching_the_store(runner, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(main, ["serve", "--port", str(port), "--log-level", "warning"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "apikey" not in result.output and "curl" not in result.output
    assert list(tmp_path.iterdir()) == []  # no database, no demo partner
