"""The operator CLI of the contract, run as a real command."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import time

import httpx
import pytest
from click.testing import CliRunner

from smsgw.cli.main import main

from ..helpers import free_port, smsgw_command


def smsgw(tmp_path, database_url: str, *args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """One operator command, as a process would give its exit code, stdout and stderr. Run
    in this process through click's runner (a process start costs about a second); `serve`
    runs as a real process. An exception the command lets out fails the test, as the
    traceback a process would print."""
    if args and args[0] == "serve":
        full_env = dict(os.environ, SMSGW_DATABASE_URL=database_url, **(env or {}))
        return subprocess.run(smsgw_command() + list(args), cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=60)
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(main, list(args), env={"SMSGW_DATABASE_URL": database_url, **(env or {})}, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["smsgw", *args], result.exit_code, result.stdout, result.stderr)


def test_partner_lifecycle(tmp_path, database_url):
    assert smsgw(tmp_path, database_url, "migrate").returncode == 0  # only serve and migrate create a store
    created = smsgw(tmp_path, database_url, "partner", "create", "acme", "--name", "Acme Ltd", "--credits", "250.50")
    assert created.returncode == 0, created.stderr
    key = re.search(r"api key: (\S+)", created.stdout).group(1)
    assert len(key) == 32
    assert smsgw(tmp_path, database_url, "partner", "topup", "acme", "100").stdout.strip() == "partner acme balance: 350.50"
    assert smsgw(tmp_path, database_url, "partner", "topup", "acme", "-0.50").stdout.strip() == "partner acme balance: 350.00"
    added = smsgw(tmp_path, database_url, "shortcode", "add", "ACME", "--partner", "acme", "--networks", "1,2")
    assert added.returncode == 0 and "networks 1,2" in added.stdout
    shown = smsgw(tmp_path, database_url, "partner", "show", "acme").stdout
    assert "Acme Ltd" in shown and "350.00" in shown and "ACME (networks 1,2)" in shown and "active" in shown
    assert key not in shown
    assert "suspended" in smsgw(tmp_path, database_url, "partner", "suspend", "acme").stdout
    assert "status:     suspended" in smsgw(tmp_path, database_url, "partner", "show", "acme").stdout


def test_clear_errors_and_exit_codes(tmp_path, database_url):
    assert smsgw(tmp_path, database_url, "migrate").returncode == 0  # only serve and migrate create a store
    smsgw(tmp_path, database_url, "partner", "create", "acme")
    again = smsgw(tmp_path, database_url, "partner", "create", "acme")
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    missing = smsgw(tmp_path, database_url, "partner", "topup", "ghost", "10")
    assert missing.returncode == 1 and "ghost does not exist" in missing.stderr
    overdraw = smsgw(tmp_path, database_url, "partner", "topup", "acme", "-5")
    assert overdraw.returncode == 1 and "below zero" in overdraw.stderr
    bad_amount = smsgw(tmp_path, database_url, "partner", "topup", "acme", "ten")
    assert bad_amount.returncode == 2 and "not an amount" in bad_amount.stderr
    bad_network = smsgw(tmp_path, database_url, "shortcode", "add", "X", "--partner", "acme", "--networks", "1,9")
    assert bad_network.returncode == 2 and "unknown network ids [9]" in bad_network.stderr
    taken = smsgw(tmp_path, database_url, "shortcode", "add", "X", "--partner", "acme")
    assert taken.returncode == 0
    assert "already registered" in smsgw(tmp_path, database_url, "shortcode", "add", "X", "--partner", "acme").stderr
    weak = smsgw(tmp_path, database_url, "partner", "create", "b", "--api-key", "short")
    assert weak.returncode == 2 and "24 to 128 characters" in weak.stderr and "Traceback" not in weak.stderr
    odd = smsgw(tmp_path, database_url, "partner", "create", "b", "--api-key", "key with spaces 0123456789")
    assert odd.returncode == 2 and "may contain only" in odd.stderr
    bad_url = smsgw(tmp_path, database_url, "partner", "show", "acme", env={"SMSGW_DATABASE_URL": "mysql://x"})
    assert bad_url.returncode == 2 and "not supported" in bad_url.stderr
    bad_tz = smsgw(tmp_path, database_url, "partner", "show", "acme", env={"SMSGW_TIMEZONE": "Mars/Olympus"})
    assert bad_tz.returncode == 2 and "SMSGW_TIMEZONE" in bad_tz.stderr


def test_an_operator_supplied_key_works_through_the_api_of_another_process(tmp_path, database_url):
    from ..helpers import LiveServer, make_settings

    key = "Acme-Key_0123456789.abcdef~"
    assert smsgw(tmp_path, database_url, "migrate").returncode == 0
    created = smsgw(tmp_path, database_url, "partner", "create", "acme", "--api-key", key, "--credits", "5")
    assert created.returncode == 0, created.stderr
    with LiveServer(make_settings(database_url)) as server:
        answer = httpx.post(server.url + "/api/services/getbalance", json={"partnerID": "acme", "apikey": key}, timeout=30).json()
    assert answer["response-code"] == 200 and answer["credit"] == "5.00"


def test_migrate_command(tmp_path, database_url):
    result = smsgw(tmp_path, database_url, "migrate")
    assert result.returncode == 0 and "up to date" in result.stdout


def test_first_serve_prints_a_demo_partner_and_a_working_curl(tmp_path):
    port = free_port()
    env = dict(os.environ, SMSGW_DATABASE_URL=f"sqlite:///{tmp_path / 'first.db'}")
    process = subprocess.Popen(
        smsgw_command() + ["serve", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "listening on" in line:
                break
        banner = "".join(lines)
        curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
        words = shlex.split(curl)
        url, body = words[2], json.loads(words[words.index("-d") + 1])
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.post(url, json=body, timeout=10).json()
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert answer["responses"][0]["response-code"] == 200
        assert "partnerID: demo" in banner and "shortcode: SMSGW" in banner
    finally:
        process.terminate()
        process.wait(timeout=20)
    # The second start finds partners and prints no demo.
    again = subprocess.Popen(
        smsgw_command() + ["serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        line = ""
        deadline = time.monotonic() + 30
        seen = []
        while "listening on" not in line and time.monotonic() < deadline:
            line = again.stdout.readline()
            seen.append(line)
        assert not any("demo partner" in s for s in seen)
        assert any("smsgw partner rotate-key demo" in s for s in seen)  # how to get a key again
    finally:
        again.terminate()
        again.wait(timeout=20)


def test_shared_postgresql_store_is_migrated_only_on_request(tmp_path, postgres_cluster):
    """No demo partner and no implicit migration on a shared store: an operator runs
    `smsgw migrate` when it suits, and until then commands say so."""
    import asyncio
    import uuid

    from ..conftest import _admin, _database_url

    name = f"smsgw_cli_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(postgres_cluster.url, f"CREATE DATABASE {name}"))
    url = _database_url(postgres_cluster.url, name)
    try:
        refused = smsgw(tmp_path, url, "partner", "show", "acme")
        assert refused.returncode == 1 and "run `smsgw migrate`" in refused.stderr
        assert smsgw(tmp_path, url, "migrate").returncode == 0
        assert smsgw(tmp_path, url, "partner", "create", "acme").returncode == 0
        port = free_port()
        process = subprocess.Popen(
            smsgw_command() + ["serve", "--port", str(port), "--role", "api"],
            cwd=tmp_path,
            env=dict(os.environ, SMSGW_DATABASE_URL=url),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                seen.append(line)
                if "listening on" in line or not line:
                    break
            assert any("listening on" in line for line in seen), seen
            assert not any("demo partner" in line for line in seen)
        finally:
            process.terminate()
            process.wait(timeout=20)
    finally:
        asyncio.run(_admin(postgres_cluster.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_status_counts_queue_and_unmatched_receipts(tmp_path, database_url):
    assert smsgw(tmp_path, database_url, "migrate").returncode == 0  # only serve and migrate create a store
    smsgw(tmp_path, database_url, "partner", "create", "acme")
    from smsgw.domain.states import DeliveryState
    from smsgw.store import receipts
    from smsgw.store.receipts import IncomingReceipt

    from ..helpers import Operator, make_settings

    operator = Operator(make_settings(database_url))
    operator._with_store(
        lambda store: store.write(
            receipts.apply_receipts,
            [IncomingReceipt("carrier", "ffff", ["s:ffff"], int(DeliveryState.DELIVERED), "DELIVRD", None, None)],
            int(time.time() * 1000),
        )
    )
    shown = smsgw(tmp_path, database_url, "status")
    assert shown.returncode == 0, shown.stderr
    assert "unmatched receipts:         1" in shown.stdout
    assert "pending callbacks:          0" in shown.stdout


def test_bad_smsc_url_is_a_clear_error_and_exit_code_2(tmp_path):
    result = smsgw(tmp_path, f"sqlite:///{tmp_path / 'smsgw.db'}", "serve", "--smsc", "smpp://a:b@host:2775?networks=9")
    assert result.returncode == 2 and "unknown network ids [9]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://x:y@host:1", "scheme must be smpp"),
        ("smpp://host:2775", "bind credentials"),
        ("smpp://a:b@host:2775?window=0", "window must be between"),
        ("smpp://a:b@host:2775?networks=9", "unknown network ids [9]"),
        ("smpp://a:b@host:2775?color=red", "unknown options color"),
        ("smpp://a:b@host:x", "port is not a number"),
        ("smpp://a:b@host:2775?tps=fast", "tps must be a number"),
    ],
    ids=["scheme", "no credentials", "window", "network", "option", "port", "tps"],
)
def test_smsc_url_errors_say_what_is_wrong(url, message):
    from smsgw.dispatch.routing import RouteError, parse_smsc_url

    with pytest.raises(RouteError, match=re.escape(message)) as raised:
        parse_smsc_url(url, known_networks={1, 2, 3})
    assert ":b@" not in str(raised.value)  # the password is masked
