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


def test_the_dashboard_shows_outcomes_by_window_and_smsc_from_the_rollups(console):
    import json
    import time

    hour = int(time.time() * 1000) // 3600_000 * 3600_000
    day = 86_400_000
    rows = [
        # (hour, partner, network, smsc, state, messages): this hour, earlier today, last week, 40 days ago
        (hour, "acme", 1, "smsc-a", 2, 7),
        (hour, "acme", 1, "smsc-a", 3, 5),
        (hour, "rival", 2, "smsc-b", 5, 2),
        (hour - 5 * 3600_000, "acme", 1, "smsc-b", 3, 11),
        (hour - 5 * 3600_000, "acme", 1, "", 9, 1),
        (hour - 7 * day, "rival", 2, "smsc-a", 8, 13),
        (hour - 40 * day, "rival", 2, "smsc-a", 3, 1000),
    ]
    for h, partner, network, smsc, state, count in rows:
        console.gateway.operator.sql(
            "INSERT INTO outcome_rollups (hour, partner_id, network_id, smsc, state, messages, parts) VALUES (:h, :p, :n, :s, :st, :m, :m)",
            {"h": h, "p": partner, "n": network, "s": smsc, "st": state, "m": count},
        )
    console.send("acme", "0712345678", "accepted now")
    with signed_in(console.url, "console", OPERATOR, OPERATOR_PASSWORD) as client:
        page = client.get("/console/dashboard").text
    data = json.loads(re.search(r'<script type="application/json" id="traffic-data">(.*?)</script>', page, re.S).group(1))
    assert data["totals"]["sent"] == [7, 7, 7]
    assert data["totals"]["delivered"] == [5, 16, 16]
    assert data["totals"]["failed"] == [2, 2, 15]  # DeliveryImpossible, then NoReceipt last week
    assert data["totals"]["cancelled"] == [0, 1, 1]
    assert data["totals"]["accepted"] == [1, 1, 1]
    assert data["by_smsc"]["smsc-a"] == {"sent": [7, 7, 7], "delivered": [5, 5, 5], "failed": [0, 0, 13]}
    assert data["by_smsc"]["smsc-b"] == {"delivered": [0, 11, 11], "failed": [2, 2, 2]}
    cells = dict(re.findall(r'<tr data-kind="(\w+)"><td>\w+</td><td class="num">(\d+)</td>', page))
    assert cells["delivered"] == "5" and cells["failed"] == "2"
    assert '<tr data-name="smsc-b">' in page and '<tr data-name="rival">' in page
