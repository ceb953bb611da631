"""Cancelling a scheduled message: refunded exactly, and anything else answered as getdlr
answers a message that does not exist."""

from __future__ import annotations

import time

import pytest

from ..helpers import DEFAULT_KEY, Gateway, bulk, entry

CANCEL = "/api/services/cancel"
GETDLR = "/api/services/getdlr"
LONG = "x" * 400  # three parts


def schedule(gateway: Gateway, text: str = LONG, partner: str = "p1", shortcode: str = "SC1") -> str:
    later = int(time.time()) + 3600
    answer = gateway.post("/api/services/sendbulk", bulk(entry(message=text, partner=partner, shortcode=shortcode, timeToSend=later))).json()
    assert answer["responses"][0]["response-code"] == 200
    return answer["responses"][0]["messageid"]


def ask(gateway: Gateway, path: str, message_id, partner: str = "p1") -> bytes:
    return gateway.post(path, {"apikey": DEFAULT_KEY, "partnerID": partner, "messageID": message_id}).content


def no_report(gateway: Gateway) -> bytes:
    return ask(gateway, GETDLR, "99999999999")


def test_cancel_refunds_exactly_its_units_through_the_ledger(gateway: Gateway):
    message_id = schedule(gateway)
    assert gateway.operator.balance("p1") == 1000_00 - 300
    answer = gateway.post(CANCEL, {"apikey": DEFAULT_KEY, "partnerID": "p1", "messageID": int(message_id)})
    assert answer.json() == {
        "response-code": 200,
        "response-description": "Success",
        "message-id": message_id,
        "delivery-status": 9,
        "delivery-description": "Cancelled",
        "refunded": "3.00",
        "credit": "1000.00",
    }
    assert gateway.operator.balance("p1") == 1000_00
    refund = gateway.operator.ledger("p1")[-1]
    assert (refund["kind"], refund["amount"], refund["balance_after"], refund["message_count"]) == ("refund", 300, 1000_00, 1)
    report = gateway.post(GETDLR, {"apikey": DEFAULT_KEY, "partnerID": "p1", "messageID": message_id}).json()
    assert (report["delivery-status"], report["delivery-description"]) == (9, "Cancelled")
    # A second cancel finds nothing to cancel, and refunds nothing.
    assert ask(gateway, CANCEL, message_id) == no_report(gateway)
    assert gateway.operator.balance("p1") == 1000_00 and len(gateway.operator.ledger("p1")) == 3


@pytest.mark.parametrize(
    ("state", "lease_owner"),
    [(1, "dispatcher-a"), (2, None), (3, None), (5, None)],
    ids=["claimed-by-a-dispatcher", "sent", "delivered", "failed"],
)
def test_a_message_past_scheduled_or_claimed_gets_getdlrs_1008(gateway: Gateway, state, lease_owner):
    message_id = schedule(gateway, "short")
    gateway.operator.sql(
        "UPDATE messages SET state = :state, lease_owner = :owner, lease_until = :until", {"state": state, "owner": lease_owner, "until": 1}
    )
    balance = gateway.operator.balance("p1")
    assert ask(gateway, CANCEL, message_id) == no_report(gateway)
    assert gateway.operator.sql("SELECT state FROM messages") == [(state,)] and gateway.operator.balance("p1") == balance


def test_another_partners_or_an_unknown_message_gets_getdlrs_1008(gateway: Gateway):
    gateway.operator.partner("p2", shortcode="SC2")
    theirs = schedule(gateway, "short", partner="p2", shortcode="SC2")
    for message_id in (theirs, "99999999999", "abc", "-1", "1" * 30):
        assert ask(gateway, CANCEL, message_id) == no_report(gateway)
    assert gateway.operator.sql("SELECT state FROM messages") == [(1,)] and gateway.operator.balance("p2") == 1000_00 - 100


@pytest.mark.parametrize("message_id", [None, True, [1], {"a": 1}], ids=["missing", "bool", "list", "object"])
def test_a_message_id_of_the_wrong_type_is_1009(gateway: Gateway, message_id):
    assert gateway.post(CANCEL, {"apikey": DEFAULT_KEY, "partnerID": "p1", "messageID": message_id}).json()["response-code"] == 1009
