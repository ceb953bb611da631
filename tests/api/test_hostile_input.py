"""Inputs a hostile or broken client sends: each refused with the contract's code, nothing
sent or charged for it, over a real server."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from ..helpers import DEFAULT_KEY, Gateway, bulk, entry

CREDS = {"partnerID": "p1", "apikey": DEFAULT_KEY}
SEND = dict(CREDS, shortcode="SC1", message="Hello", mobile="0712345678")


def query(fields: dict[str, str]) -> str:
    return query_pairs(list(fields.items()))


def query_pairs(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)


def stored_messages(gateway: Gateway) -> int:
    return gateway.operator.sql("SELECT count(*) FROM messages")[0][0]


@pytest.mark.parametrize(
    "raw_query",
    [
        pytest.param(query(SEND).replace("message=Hello", "message=%FF%FE"), id="bytes-not-utf8"),
        pytest.param(query(SEND).replace("message=Hello", "message=Caf%C3"), id="truncated-sequence"),
        pytest.param(query(SEND).replace("message=Hello", "message=%ED%A0%80"), id="lone-surrogate"),
        pytest.param(query(SEND).replace("message=Hello", "message=%C0%AF"), id="overlong-encoding"),
        pytest.param(query(SEND) + "&%FF=1", id="field-name"),
    ],
)
def test_invalid_utf8_in_a_query_string_is_1010_as_in_a_body(gateway: Gateway, raw_query: str):
    from_query = gateway.client.get(gateway.url + "/api/services/sendsms?" + raw_query)
    from_form = gateway.client.post(
        gateway.url + "/api/services/sendsms", content=raw_query.encode(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert from_query.status_code == from_form.status_code == 200
    assert from_query.json()["response-code"] == from_form.json()["response-code"] == 1010
    assert "not UTF-8" in from_query.json()["response-description"]
    assert stored_messages(gateway) == 0 and gateway.operator.balance("p1") == 1000_00


@pytest.mark.parametrize("mobile", ["-712345678", "-0712345678", "-254712345678", "+-254712345678", ")0712345678", "0712345678-", "/0712345678"])
def test_a_number_with_leading_or_trailing_junk_is_1003(gateway: Gateway, mobile: str):
    (bulk_answer,) = gateway.post("/api/services/sendbulk", bulk(entry(mobile))).json()["responses"]
    (sms_answer,) = gateway.post("/api/services/sendsms", dict(SEND, mobile=mobile)).json()["responses"]
    assert bulk_answer["response-code"] == sms_answer["response-code"] == 1003
    assert bulk_answer["mobile"] == mobile
    assert stored_messages(gateway) == 0


def _other_digits(text: str, zero: str) -> str:
    return "".join(chr(ord(zero) + int(c)) if c.isdigit() else c for c in text)


IN_AN_HOUR = str(int(time.time()) + 3600)
# Within the year ahead that is accepted, so that only the digits can be what is refused.
IN_A_MONTH = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() + 30 * 86400))


@pytest.mark.parametrize(
    "time_to_send",
    [
        pytest.param(_other_digits(IN_AN_HOUR, "\u0660"), id="arabic-indic"),
        pytest.param(_other_digits(IN_AN_HOUR, "\u06f0"), id="extended-arabic-indic"),
        pytest.param(_other_digits(IN_AN_HOUR, "\uff10"), id="fullwidth"),
        pytest.param(_other_digits(IN_A_MONTH, "\u0966"), id="devanagari-date"),
        pytest.param(IN_A_MONTH[:-1] + "\u0660", id="one-digit-in-a-date"),
    ],
)
def test_time_to_send_with_non_ascii_digits_is_1009(gateway: Gateway, time_to_send: str):
    (bulk_answer,) = gateway.post("/api/services/sendbulk", bulk(entry(timeToSend=time_to_send))).json()["responses"]
    (sms_answer,) = gateway.post("/api/services/sendsms", dict(SEND, timeToSend=time_to_send)).json()["responses"]
    assert bulk_answer["response-code"] == sms_answer["response-code"] == 1009
    assert stored_messages(gateway) == 0


def _form(gateway: Gateway, pairs: list[tuple[str, str]]):
    return gateway.client.post(
        gateway.url + "/api/services/sendsms", content=query_pairs(pairs).encode(), headers={"content-type": "application/x-www-form-urlencoded"}
    )


def _query(gateway: Gateway, pairs: list[tuple[str, str]]):
    return gateway.client.get(gateway.url + "/api/services/sendsms?" + query_pairs(pairs))


def _multipart(gateway: Gateway, pairs: list[tuple[str, str]]):
    return gateway.client.post(gateway.url + "/api/services/sendsms", files=[(k, (None, v)) for k, v in pairs])


@pytest.mark.parametrize("send", [_form, _query, _multipart], ids=["urlencoded", "query", "multipart"])
@pytest.mark.parametrize(
    "field, second",
    [("mobile", "0733000002"), ("message", "Something else"), ("apikey", DEFAULT_KEY), ("shortcode", "SC1")],
)
def test_a_field_given_twice_is_1010_naming_it(gateway: Gateway, send, field: str, second: str):
    pairs = list(SEND.items()) + [(field, second)]
    answer = send(gateway, pairs).json()
    assert answer["response-code"] == 1010
    assert f"'{field}' given twice" in answer["response-description"]
    assert stored_messages(gateway) == 0


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("GET", "/api/services/sendbulk", "POST"),
        ("PUT", "/api/services/sendbulk/", "POST"),
        ("DELETE", "/api/services/getbalance", "GET, POST"),
        ("PATCH", "/api/services/sendsms/", "GET, POST"),
        ("GET", "/api/admin/partners/p1/topup", "POST"),
        ("POST", "/api/admin/partners/p1", "GET"),
    ],
)
def test_405_names_the_allowed_methods(gateway: Gateway, method: str, path: str, allowed: str):
    response = gateway.client.request(method, gateway.url + path)
    assert response.status_code == 405 and response.json()["response-code"] == 1010
    assert response.headers["Allow"] == allowed
