"""The operator commands of two-way messaging, run as real commands."""

from __future__ import annotations

import re

from ..cli.test_operator_cli import smsgw


def test_keywords_promotional_flag_and_inbound_endpoint(tmp_path, database_url):
    assert smsgw(tmp_path, database_url, "migrate").returncode == 0
    assert smsgw(tmp_path, database_url, "partner", "create", "acme").returncode == 0
    assert smsgw(tmp_path, database_url, "partner", "create", "beta").returncode == 0
    added = smsgw(tmp_path, database_url, "shortcode", "add", "ACME", "--partner", "acme", "--promotional")
    assert added.returncode == 0 and "(promotional)" in added.stdout
    assert "transactional" in smsgw(tmp_path, database_url, "shortcode", "set", "ACME", "--transactional").stdout
    assert "promotional" in smsgw(tmp_path, database_url, "shortcode", "set", "ACME", "--promotional").stdout
    missing = smsgw(tmp_path, database_url, "shortcode", "set", "GHOST", "--promotional")
    assert missing.returncode == 1 and "GHOST does not exist" in missing.stderr

    keyword = smsgw(tmp_path, database_url, "shortcode", "keyword", "add", "22000", "news", "--partner", "beta")
    assert keyword.returncode == 0 and "starting with NEWS go to beta" in keyword.stdout
    again = smsgw(tmp_path, database_url, "shortcode", "keyword", "add", "22000", "NEWS", "--partner", "acme")
    assert again.returncode == 1 and "already has the keyword NEWS" in again.stderr
    foreign = smsgw(tmp_path, database_url, "shortcode", "keyword", "add", "ACME", "JOBS", "--partner", "beta")
    assert foreign.returncode == 1 and "sender id of acme" in foreign.stderr
    two_words = smsgw(tmp_path, database_url, "shortcode", "keyword", "add", "22000", "two words", "--partner", "beta")
    assert two_words.returncode == 2 and "one word" in two_words.stderr
    assert smsgw(tmp_path, database_url, "shortcode", "keyword", "list").stdout.splitlines() == ["22000\tNEWS\tbeta"]
    assert smsgw(tmp_path, database_url, "shortcode", "keyword", "remove", "22000", "news").returncode == 0
    assert smsgw(tmp_path, database_url, "shortcode", "keyword", "list", "22000").stdout == ""

    inbound = smsgw(tmp_path, database_url, "partner", "inbound", "acme", "https://acme.example/mo", "--method", "get", "--auto-reply")
    assert inbound.returncode == 0, inbound.stderr
    assert "by GET, with auto-reply" in inbound.stdout
    secret = re.search(r"signing secret: (\w+)", inbound.stdout).group(1)
    # The secret is the partner's one signing secret: a second call keeps it.
    assert "signing secret" not in smsgw(tmp_path, database_url, "partner", "inbound", "acme", "https://acme.example/mo2").stdout
    assert len(secret) == 64
    bad = smsgw(tmp_path, database_url, "partner", "inbound", "acme", "ftp://acme.example/")
    assert bad.returncode == 2 and "http:// or https://" in bad.stderr
    assert "not forwarded" in smsgw(tmp_path, database_url, "partner", "inbound", "acme", "--clear").stdout
