"""`smsgw partner` for resellers and partner controls, run as a real command."""

from __future__ import annotations

from .test_operator_cli import smsgw


def test_child_accounts_limits_and_allow_lists(tmp_path, database_url):
    def run(*args: str):
        return smsgw(tmp_path, database_url, "partner", *args)

    assert smsgw(tmp_path, database_url, "migrate").returncode == 0
    assert run("create", "reseller", "--credits", "100").returncode == 0
    child = run("create", "kid", "--parent", "reseller", "--rate", "0.80")
    assert child.returncode == 0 and "child of reseller at 0.80 per unit" in child.stdout
    orphan = run("create", "orphan", "--parent", "ghost")
    assert orphan.returncode == 1 and "ghost does not exist" in orphan.stderr
    assert run("create", "free", "--parent", "reseller", "--rate", "0").returncode == 2
    shown = run("show", "reseller").stdout
    assert "child:      kid (balance 0.00, rate 0.80)" in shown and "parent:" not in shown
    assert "parent:     reseller (rate 0.80 per unit)" in run("show", "kid").stdout

    assert run("limit", "kid", "--mps", "200").stdout.strip() == "partner kid: at most 200 messages per second"
    assert "rate limit: 200 messages/s" in run("show", "kid").stdout
    assert run("limit", "kid", "--clear").stdout.strip() == "partner kid: no rate limit"
    assert "rate limit: none" in run("show", "kid").stdout
    assert run("limit", "kid").returncode == 2 and run("limit", "kid", "--mps", "0").returncode == 2

    allowed = run("allow-ip", "kid", "192.0.2.0/24", "2001:db8::1,10.1.2.3")
    assert allowed.stdout.strip() == "partner kid: requests accepted from 192.0.2.0/24,2001:db8::1/128,10.1.2.3/32"
    assert "allowed IP: 192.0.2.0/24,2001:db8::1/128,10.1.2.3/32" in run("show", "kid").stdout
    bad = run("allow-ip", "kid", "300.1.1.1")
    assert bad.returncode == 2 and "300.1.1.1" in bad.stderr
    assert run("allow-ip", "kid", "--clear").stdout.strip() == "partner kid: requests accepted from any address"
    assert "allowed IP: any" in run("show", "kid").stdout
    assert "ghost does not exist" in run("limit", "ghost", "--mps", "5").stderr
