"""The operator's ledger and unmatched-receipt pages over HTTP: what the store holds, newest
first, paged, escaped, and only for a signed-in operator."""

from __future__ import annotations

import re

import httpx

from smsgw.console.operator_pages import LEDGER_ROWS

from .conftest import OPERATOR, OPERATOR_PASSWORD, PARTNER_PASSWORDS, signed_in

EXTRA_ENTRIES = LEDGER_ROWS + 5  # more than one page


def entries_on(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-entry="(\d+)">', html)]


def test_the_ledger_lists_every_partners_entries_newest_first_a_page_at_a_time(console):
    console.send("acme", "0712345678", "charged to acme")
    console.send("rival", "0712345679", "charged to rival")
    console.gateway.operator.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
        "INSERT INTO ledger (partner_id, amount, balance_after, kind, reference, message_count, created_at) "
        "SELECT 'rival', 100, 0, 'topup', 'ref-' || i, 0, i FROM n",
        {"count": EXTRA_ENTRIES},
    )
    stored = [row[0] for row in console.gateway.operator.sql("SELECT id FROM ledger ORDER BY id DESC")]
    partners = {row[0] for row in console.gateway.operator.sql("SELECT DISTINCT partner_id FROM ledger")}
    assert partners == {"acme", "rival"}
    with signed_in(console.url, "console", OPERATOR, OPERATOR_PASSWORD) as client:
        first = client.get("/console/ledger")
        assert first.status_code == 200
        assert entries_on(first.text) == stored[:LEDGER_ROWS]
        older = re.search(r'<a id="older" href="(/console/ledger\?before=\d+)">', first.text)
        assert older is not None
        second = client.get(older.group(1))
        assert entries_on(second.text) == stored[LEDGER_ROWS:]
        assert 'id="older"' not in second.text
        assert client.get("/console/ledger?before=x' OR 1=1").status_code == 200  # read as no cursor


def test_the_unmatched_receipts_page_shows_open_and_matched_ones_escaped(console):
    console.gateway.operator.sql(
        "INSERT INTO unmatched_receipts (connector, smsc_message_id, keys, state, stat, error, done_at, received_at, matched_at) VALUES "
        "('carrier', '<script>alert(1)</script>', 'k1', 3, 'DELIVRD', '000', 1, 1000, NULL), "
        "('carrier', 'ABC123', 'k2', 3, 'DELIVRD', '000', 1, 2000, 3000)"
    )
    with signed_in(console.url, "console", OPERATOR, OPERATOR_PASSWORD) as client:
        page = client.get("/console/unmatched").text
    rows = re.findall(r'<tr data-carrier-id="([^"]*)" data-matched="(yes|no)">', page)
    assert rows == [("ABC123", "yes"), ("&lt;script&gt;alert(1)&lt;/script&gt;", "no")]
    assert "<script>alert(1)" not in page


def test_a_partner_or_a_stranger_gets_neither_page(console):
    with httpx.Client(base_url=console.url, timeout=30) as stranger:
        for path in ("/console/ledger", "/console/unmatched"):
            answer = stranger.get(path)
            assert (answer.status_code, answer.headers["location"]) == (303, "/console/login")
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as partner:
        for path in ("/console/ledger", "/console/unmatched"):
            assert partner.get(path).status_code == 303
