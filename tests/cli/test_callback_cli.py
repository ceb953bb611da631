"""`smsgw partner callback`: a URL the sender could not use is refused when it is set."""

from __future__ import annotations

from .test_operator_cli import smsgw


def test_callback_urls_that_cannot_be_sent_to_are_refused_with_the_reason(tmp_path, database_url):
    assert smsgw(tmp_path, database_url, "migrate").returncode == 0
    assert smsgw(tmp_path, database_url, "partner", "create", "acme").returncode == 0
    refused = {
        "http://127.0.0.1:99999/dlr": "Port out of range",
        "http://xn--/": "'xn--' is not a valid host name",
        "http://acme.example/dlr\r\nX-Injected: 1": "control character (U+000D)",
    }
    for url, reason in refused.items():
        result = smsgw(tmp_path, database_url, "partner", "callback", "acme", url)
        assert result.returncode == 2 and reason in result.stderr and "Traceback" not in result.stderr, (url, result.stderr)
    assert "callback:   none" in smsgw(tmp_path, database_url, "partner", "show", "acme").stdout
    accepted = smsgw(tmp_path, database_url, "partner", "callback", "acme", "https://93.184.216.34/dlr")
    assert accepted.returncode == 0 and "signing secret:" in accepted.stdout


def test_callback_and_inbound_urls_to_private_addresses_need_allow_private(tmp_path, database_url):
    assert smsgw(tmp_path, database_url, "migrate").returncode == 0
    assert smsgw(tmp_path, database_url, "partner", "create", "acme").returncode == 0
    for url in (
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/",
        "http://localhost:8080/dlr",
    ):
        for command in ("callback", "inbound"):
            result = smsgw(tmp_path, database_url, "partner", command, "acme", url)
            assert result.returncode == 2 and "is not a public address" in result.stderr, (command, url, result.stderr)
    assert "callback:   none" in smsgw(tmp_path, database_url, "partner", "show", "acme").stdout
    allowed = smsgw(tmp_path, database_url, "partner", "callback", "acme", "http://127.0.0.1:8080/dlr", "--allow-private")
    assert allowed.returncode == 0, allowed.stderr
    # The permission stays with the partner, for its inbound URL too, until taken back.
    assert smsgw(tmp_path, database_url, "partner", "inbound", "acme", "http://10.0.0.1/mo").returncode == 0
    again = smsgw(tmp_path, database_url, "partner", "callback", "acme", "http://127.0.0.1:8080/dlr", "--public-only")
    assert again.returncode == 2 and "is not a public address" in again.stderr
