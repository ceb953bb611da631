"""Whatever a client sends, the answer is a code from the table: never HTTP 500, never a
traceback, and nothing already accepted is lost."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..helpers import Gateway, bulk, entry

SENDBULK = "/api/services/sendbulk"


def raw(gw: Gateway, body: bytes, content_type: str = "application/json"):
    return gw.post(SENDBULK, content=body, headers={"content-type": content_type})


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{",
        b"[]",
        b"null",
        b"42",
        b'"smslist"',
        b'{"smslist": null}',
        b'{"smslist": {}}',
        b'{"smslist": "x"}',
        b'{"smslist": []}',
        b'{"smslist": [1, 2]}',
        b'{"smslist": [null]}',
        b'{"count": 3, "smslist": [{"partnerID": "p1"}]}',
        b'{"count": "three", "smslist": [{"partnerID": "p1"}]}',
        b'{"count": true, "smslist": [{"partnerID": "p1"}]}',
        b'{"count": 1.5, "smslist": [{"partnerID": "p1"}]}',
        b'{"smslist": [{"message": NaN}]}',
        b"\xff\xfe\x00garbage",
        b'{"smslist": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b"partnerID=p1&apikey=x",
    ],
)
def test_malformed_bodies_are_1010(gateway: Gateway, body: bytes):
    response = raw(gateway, body)
    assert response.status_code == 200
    assert response.json()["response-code"] == 1010


def test_count_may_be_absent_or_null(gateway: Gateway):
    for count in (None, "auto"):
        assert gateway.post(SENDBULK, bulk(entry(), count=count)).json()["responses"][0]["response-code"] == 200
    explicit_null = {"count": None, "smslist": [entry()]}
    assert gateway.post(SENDBULK, explicit_null).json()["responses"][0]["response-code"] == 200


@pytest.mark.parametrize(
    "field,value,code",
    [
        ("partnerID", None, 4091),
        ("partnerID", "", 4091),
        ("partnerID", [1], 1009),
        ("partnerID", {"a": 1}, 1009),
        ("partnerID", True, 1009),
        ("apikey", None, 4092),
        ("apikey", "", 4092),
        ("apikey", ["k"], 1009),
        ("pass_type", 5, 1009),
        ("pass_type", "sha256", 1009),
        ("shortcode", None, 1001),
        ("shortcode", ["SC1"], 1001),
        # A NUL (which PostgreSQL cannot store) is answered before the store is asked.
        ("partnerID", "p1\x00", 1006),
        ("partnerID", "p" * 65, 1006),
        ("shortcode", "SC1\x00", 1001),
        ("shortcode", "S" * 40, 1001),
    ],
)
def test_request_level_fields_of_the_wrong_kind(gateway: Gateway, field, value, code):
    item = entry()
    item[field] = value
    body = gateway.post(SENDBULK, bulk(item)).json()
    assert body == {"response-code": code, "response-description": body["response-description"]}


@pytest.mark.parametrize(
    "field,value,code",
    [
        ("mobile", None, 1003),
        ("mobile", "", 1003),
        ("mobile", ["0712345678"], 1009),
        ("mobile", {"n": 1}, 1009),
        ("mobile", True, 1009),
        ("mobile", 7.12e8, 1009),
        ("mobile", "0712 CALL ME", 1003),
        ("mobile", "+1 202 555 0143", 1003),
        ("mobile", "020 2222222", 1003),  # a Nairobi landline: valid, but not a mobile
        ("message", None, 1009),
        ("message", "   ", 1009),
        ("message", 12345, 1009),
        ("message", ["hi"], 1009),
        ("message", "a\x00b", 1009),
        ("clientsmsid", {"id": 1}, 1009),
        ("clientsmsid", [1], 1009),
        ("clientsmsid", "x" * 200, 1009),
        ("timeToSend", True, 1009),
        ("timeToSend", [1], 1009),
        ("timeToSend", -5, 1009),
        ("timeToSend", 99999999999, 1009),
    ],
)
def test_entry_fields_of_the_wrong_kind_fail_only_their_entry(gateway: Gateway, field, value, code):
    bad = entry("0712000001")
    bad[field] = value
    out = gateway.post(SENDBULK, bulk(entry("0712000002"), bad, entry("0712000003"))).json()["responses"]
    assert [r["response-code"] for r in out] == [200, code, 200]
    assert gateway.operator.sql("SELECT count(*) FROM messages") == [(2,)]


def test_later_entry_that_is_not_an_object(gateway: Gateway):
    out = gateway.post(SENDBULK, {"smslist": [entry(), "junk", None, 5]}).json()["responses"]
    assert [r["response-code"] for r in out] == [200, 1009, 1009, 1009]


def test_first_entry_that_is_not_an_object(gateway: Gateway):
    assert gateway.post(SENDBULK, {"smslist": ["junk", entry()]}).json()["response-code"] == 1010


def test_body_over_the_limit_is_413_and_accepts_nothing(gateway: Gateway):
    huge = orjson.dumps(bulk(entry(message="x" * 900), *[entry(message="x" * 900) for _ in range(999)]))
    padded = huge[:-1] + b', "padding": "' + b"y" * (9 * 1024 * 1024) + b'"}'
    response = raw(gateway, padded)
    assert response.status_code == 413
    assert response.json()["response-code"] == 1010
    assert gateway.operator.sql("SELECT count(*) FROM messages") == [(0,)]


def test_chunked_body_over_the_limit_is_413(gateway: Gateway):
    def chunks():
        yield b'{"smslist": ["'
        for _ in range(10):
            yield b"z" * (1024 * 1024)
        yield b'"]}'

    response = gateway.client.post(gateway.url + SENDBULK, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["response-code"] == 1010


def test_integers_past_64_bits_and_lone_surrogates(gateway: Gateway):
    big = b'{"smslist": [{"partnerID": "p1", "apikey": "test-key-0123456789abcdef", "shortcode": "SC1", "mobile": "0712000001", "message": "hi", "clientsmsid": 123456789012345678901234567890}]}'
    answered = raw(gateway, big)
    out = answered.json()["responses"][0]
    assert out["response-code"] == 1009 and "send it as a string" in out["response-description"]
    # Echoed with the type and digits it came with, not as the float 1.2345678901234568e+29.
    assert out["clientsmsid"] == 123456789012345678901234567890
    assert b'"clientsmsid":123456789012345678901234567890' in answered.content
    as_float = raw(gateway, big.replace(b"123456789012345678901234567890", b"1.5e300")).content
    assert b'"clientsmsid":1.5e300' in as_float and b"send it as a string" in as_float
    exact = big.replace(b"123456789012345678901234567890", b"9223372036854775807")
    assert raw(gateway, exact).json()["responses"][0]["clientsmsid"] == 9223372036854775807
    surrogate = b'{"smslist": [{"partnerID": "p1", "apikey": "k", "message": "\\ud800"}]}'
    assert raw(gateway, surrogate).json()["response-code"] == 1010


def test_earlier_acceptance_survives_later_garbage(gateway: Gateway):
    ok = gateway.post(SENDBULK, bulk(entry())).json()["responses"][0]
    for junk in (b"{", b'{"smslist": 1}', b"\x00" * 100):
        raw(gateway, junk)
    assert gateway.operator.sql("SELECT id FROM messages") == [(int(ok["messageid"]),)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(["partnerID", "apikey", "pass_type", "mobile", "message", "shortcode", "clientsmsid", "timeToSend", "count"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    overrides=st.lists(st.tuples(st.integers(0, 2), field_names, json_values), max_size=6),
    count=st.one_of(st.just("auto"), json_values),
)
def test_any_json_gets_a_code_never_a_500(gateway: Gateway, overrides, count):
    entries = [entry("0712000001"), entry("0733000002"), entry("0770000003")]
    for index, field, value in overrides:
        entries[index][field] = value
    response = gateway.post(SENDBULK, bulk(*entries, count=count))
    assert response.status_code == 200
    body = response.json()
    if "responses" in body:
        assert len(body["responses"]) == 3
        assert all(r["response-code"] in (200, 1002, 1003, 1004, 1005, 1009) for r in body["responses"])
    else:
        assert body["response-code"] in (1001, 1006, 1009, 1010, 4091, 4092)
