"""sendsms, sendotp, getbalance, getdlr: JSON, form and query bodies, with and without slash."""

from __future__ import annotations

import pytest

from ..helpers import DEFAULT_KEY, Gateway, bulk, entry

CREDS = {"partnerID": "p1", "apikey": DEFAULT_KEY}


def call(gw: Gateway, path: str, style: str, fields: dict):
    if style == "json":
        return gw.post(path, fields)
    if style == "form":
        return gw.client.post(gw.url + path, data={k: str(v) for k, v in fields.items()})
    if style == "query":
        return gw.get(path, params={k: str(v) for k, v in fields.items()})
    raise AssertionError(style)


STYLES = ["json", "form", "query"]
SLASHES = ["", "/"]


@pytest.mark.parametrize("slash", SLASHES)
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("endpoint", ["sendsms", "sendotp"])
def test_send_to_one_and_many_numbers(gateway: Gateway, endpoint: str, style: str, slash: str):
    fields = dict(CREDS, shortcode="SC1", message="Your code is 1234", mobile="0712000001, +254733000002,bad")
    out = call(gateway, f"/api/services/{endpoint}{slash}", style, fields).json()["responses"]
    assert [r["response-code"] for r in out] == [200, 200, 1003]
    # sendsms/sendotp answer the normalised number as a JSON number.
    assert out[0]["mobile"] == 254712000001 and out[1]["mobile"] == 254733000002
    assert out[2]["mobile"] == "bad"
    priorities = {p for (p,) in gateway.operator.sql("SELECT DISTINCT priority FROM messages")}
    assert priorities == ({0} if endpoint == "sendotp" else {1})


def test_sendsms_single_number_as_json_number(gateway: Gateway):
    out = gateway.post("/api/services/sendsms", dict(CREDS, shortcode="SC1", message="hi", mobile=254712000009, clientsmsid=5)).json()
    assert out["responses"][0]["response-code"] == 200 and out["responses"][0]["clientsmsid"] == 5


def test_sendsms_without_mobile_is_an_invalid_number(gateway: Gateway):
    out = gateway.post("/api/services/sendsms", dict(CREDS, shortcode="SC1", message="hi")).json()
    assert out["responses"][0]["response-code"] == 1003


def test_otp_goes_ahead_of_bulk_in_the_queue_order(gateway: Gateway):
    gateway.post("/api/services/sendbulk", bulk(entry("0712000001")))
    gateway.post("/api/services/sendotp", dict(CREDS, shortcode="SC1", message="otp 1", mobile="0712000002"))
    first = gateway.operator.sql("SELECT msisdn FROM messages WHERE state = 1 ORDER BY priority, due_at, id LIMIT 1")
    assert first == [("254712000002",)]


@pytest.mark.parametrize("slash", SLASHES)
@pytest.mark.parametrize("style", STYLES)
def test_getbalance(gateway: Gateway, style: str, slash: str):
    body = call(gateway, f"/api/services/getbalance{slash}", style, CREDS).json()
    assert body == {"response-code": 200, "response-description": "Success", "credit": "1000.00", "partner-id": "p1"}


@pytest.mark.parametrize("slash", SLASHES)
@pytest.mark.parametrize("style", STYLES)
def test_getdlr_of_a_queued_message(gateway: Gateway, style: str, slash: str):
    sent = gateway.post("/api/services/sendbulk", bulk(entry("0733000001"))).json()["responses"][0]
    body = call(gateway, f"/api/services/getdlr{slash}", style, dict(CREDS, messageID=sent["messageid"])).json()
    assert body["response-code"] == 200
    assert body["message-id"] == sent["messageid"]
    assert body["delivery-status"] == 1 and body["delivery-description"] == "Scheduled"
    assert body["delivery-networkid"] == 2
    assert body["delivery-tat"] == "00:00:00"
    assert len(body["delivery-time"]) == len("2026-11-01 11:15:32")


def test_getdlr_message_id_as_number_and_bad_ids(gateway: Gateway):
    sent = gateway.post("/api/services/sendbulk", bulk(entry())).json()["responses"][0]
    assert gateway.post("/api/services/getdlr", dict(CREDS, messageID=int(sent["messageid"]))).json()["response-code"] == 200
    for bad in ("abc", "-1", "1" * 40):
        assert gateway.post("/api/services/getdlr", dict(CREDS, messageID=bad)).json()["response-code"] == 1008
    assert gateway.post("/api/services/getdlr", CREDS).json()["response-code"] == 1009
    assert gateway.post("/api/services/getdlr", dict(CREDS, messageID=[1])).json()["response-code"] == 1009


def test_wrong_method_is_405_with_a_code(gateway: Gateway):
    response = gateway.get("/api/services/sendbulk")
    assert response.status_code == 405
    assert response.json()["response-code"] == 1010
    response = gateway.client.delete(gateway.url + "/api/services/getbalance")
    assert response.status_code == 405 and response.json()["response-code"] == 1010


def test_unknown_path_has_a_code(gateway: Gateway):
    response = gateway.post("/api/services/sendfax", {})
    assert response.status_code == 404 and response.json()["response-code"] == 1010


def test_multipart_form_as_php_curl_sends_an_array(gateway: Gateway):
    files = {k: (None, v) for k, v in dict(CREDS, shortcode="SC1", message="hi", mobile="0712000001").items()}
    out = gateway.client.post(gateway.url + "/api/services/sendsms", files=files).json()
    assert out["responses"][0]["response-code"] == 200


def test_a_get_is_answered_from_its_query_whatever_body_it_carries(gateway: Gateway):
    query = dict(CREDS, shortcode="SC1", message="hi", mobile="0712000001")
    response = gateway.client.request("GET", gateway.url + "/api/services/sendsms", params=query, content=b"x" * (9 * 1024 * 1024))
    assert response.status_code == 200 and response.json()["responses"][0]["response-code"] == 200


def test_too_many_contacts_is_counted_before_splitting(gateway: Gateway):
    commas = "," * 5_000_000  # 5 MB of separators: refused without building the list
    response = gateway.post("/api/services/sendsms", dict(CREDS, shortcode="SC1", message="hi", mobile="0712000001" + commas))
    assert response.json()["response-code"] == 1104
