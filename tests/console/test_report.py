"""The portal's delivery report as CSV: the partner's own messages, as the store has them."""

from __future__ import annotations

import csv
import io

from smsgw.console import portal_pages
from smsgw.domain.money import format_units
from smsgw.domain.states import DeliveryState

from .conftest import PARTNER_PASSWORDS, signed_in


def report(console, query: str | None = None) -> list[dict[str, str]]:
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as client:
        answer = client.get("/portal/messages.csv", params={"q": query} if query else None)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert answer.headers["content-disposition"] == 'attachment; filename="acme-delivery-report.csv"'
        return list(csv.DictReader(io.StringIO(answer.text)))


def test_the_report_has_every_own_message_as_stored_across_pages(console, monkeypatch):
    monkeypatch.setattr(portal_pages, "REPORT_PAGE", 2)  # several pages from five messages
    ids = [console.send("acme", f"07123456{n:02d}", f"message {n}") for n in range(4)]
    ids.append(console.send("acme", "0733000111", '=HYPERLINK("http://evil.example","x")'))
    console.send("rival", "0712345600", "not acme's")
    rows = report(console)
    stored = console.gateway.operator.sql(
        "SELECT id, msisdn, shortcode, network_id, parts, cost, state, text FROM messages WHERE partner_id = 'acme' ORDER BY id DESC"
    )
    assert [int(r["messageid"]) for r in rows] == sorted(ids, reverse=True)
    for row, (mid, msisdn, shortcode, network, parts, cost, state, text) in zip(rows, stored):
        assert (row["messageid"], row["mobile"], row["shortcode"], row["networkid"], row["parts"]) == (
            str(mid),
            msisdn,
            shortcode,
            str(network),
            str(parts),
        )
        assert (row["cost"], row["delivery-status"], row["delivery-description"]) == (
            format_units(cost),
            str(state),
            DeliveryState(state).description,
        )
        assert row["message"] == (text if not text.startswith("=") else "'" + text)  # a formula stays text in a spreadsheet


def test_the_report_of_a_search_has_only_its_matches(console):
    wanted = console.send("acme", "0712345678", "this one")
    console.send("acme", "0733000111", "not this one")
    console.send("rival", "0712345678", "nor rival's")
    assert [int(r["messageid"]) for r in report(console, "+254712345678")] == [wanted]
