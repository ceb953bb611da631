"""Delivery bookkeeping in the store, on both databases."""

from __future__ import annotations

import time

from smsgw.domain.states import DeliveryState
from smsgw.store import outcomes, queue, retention
from smsgw.store.outcomes import Submitted
from smsgw.store.receipts import IncomingReceipt

from ..helpers import LiveServer, Operator, bulk, entry, make_settings

DAY = 86_400_000


def _accept_one(settings, operator) -> int:
    import httpx

    with LiveServer(settings) as server:
        answer = httpx.post(server.url + "/api/services/sendbulk", json=bulk(entry()), timeout=30).json()
    return int(answer["responses"][0]["messageid"])


def test_a_receipt_sent_twice_reports_once(database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", shortcode="SC1")
    operator.sql("UPDATE partners SET callback_url = 'http://127.0.0.1:9/dlr', callback_secret = 's' WHERE id = 'p1'")
    message_id = _accept_one(settings, operator)
    now = int(time.time() * 1000)
    receipt = IncomingReceipt("c", "A1", ["s:a1"], int(DeliveryState.DELIVERED), "DELIVRD", None, None)

    def record(conn, receipts):
        return outcomes.record_outcomes(conn, [], [], [], receipts, now, settings.timezone)

    def submit(conn):
        queue.claim_due(conn, "me", now, 10, 60_000, None)
        outcomes.record_submitted(conn, [Submitted(message_id, "c", ["A1"], [["s:a1"]])], now)

    operator._with_store(lambda store: store.write(submit))
    first = operator._with_store(lambda store: store.write(record, [receipt]))
    again = operator._with_store(lambda store: store.write(record, [receipt]))
    assert first.finished == [message_id] and first.callbacks == 1
    assert again.finished == [] and again.callbacks == 0
    assert operator.sql("SELECT count(*) FROM callbacks") == [(1,)]


def test_purge_drops_only_what_is_past_its_time(database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", shortcode="SC1")
    now = int(time.time() * 1000)
    for key, age in (("old", 2 * DAY), ("fresh", 1000)):
        operator.sql(
            "INSERT INTO idempotency_keys (partner_id, key, body_sha256, response, created_at) VALUES ('p1', :key, 'h', :response, :created)",
            {"key": key, "response": b"x", "created": now - age},
        )
    for message_id, delivered_age in ((1, 8 * DAY), (2, DAY)):
        operator.sql(
            "INSERT INTO callbacks (partner_id, message_id, url, body, attempts, next_attempt_at, delivered_at, created_at) "
            "VALUES ('p1', :m, 'http://x', :b, 1, 0, :d, 0)",
            {"m": message_id, "b": b"{}", "d": now - delivered_age},
        )
    operator.sql(
        "INSERT INTO callbacks (partner_id, message_id, url, body, attempts, next_attempt_at, created_at) VALUES ('p1', 3, 'http://x', :b, 9, 0, 0)",
        {"b": b"{}"},
    )
    for message_id, given_up_age in ((4, 8 * DAY), (5, DAY)):
        operator.sql(
            "INSERT INTO callbacks (partner_id, message_id, url, body, attempts, next_attempt_at, given_up_at, created_at) "
            "VALUES ('p1', :m, 'http://x', :b, 9, 0, :g, 0)",
            {"m": message_id, "b": b"{}", "g": now - given_up_age},
        )
    for smsc_id, age in (("old", 31 * DAY), ("new", DAY)):
        operator.sql(
            "INSERT INTO unmatched_receipts (connector, smsc_message_id, keys, state, received_at) VALUES ('c', :i, 's:x', 3, :r)",
            {"i": smsc_id, "r": now - age},
        )
    operator._with_store(lambda store: store.write(retention.purge, now))
    assert operator.sql("SELECT key FROM idempotency_keys") == [("fresh",)]
    # A callback never delivered is kept, however old: it is still owed.
    assert sorted(operator.sql("SELECT message_id FROM callbacks")) == [(2,), (3,), (5,)]
    assert operator.sql("SELECT smsc_message_id FROM unmatched_receipts") == [("new",)]
