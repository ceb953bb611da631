"""Reading answers as the API family's providers write them, and the retry arithmetic.

These are pure functions: the same ones the client runs on every real answer (the tests
against a live gateway are in test_client.py)."""

from __future__ import annotations

import random
from decimal import Decimal

import orjson
import pytest

from smsgw.client import (
    InvalidCredentials,
    InvalidSenderId,
    Message,
    ProtocolError,
    RateLimited,
    RetryPolicy,
    SmsgwError,
    TryAgainLater,
    UnsupportedRequestType,
    error_for,
)
from smsgw.client.protocol import (
    Credentials,
    balance_result,
    bulk_body,
    delivery_report_result,
    read_response,
    send_results,
    service_url,
)
from smsgw.domain.codes import Code


def answer(doc, status=200, headers=None):
    return read_response(status, orjson.dumps(doc), headers or {})


def test_smsgw_answer_is_read_field_by_field():
    doc = {
        "responses": [
            {
                "response-code": 200,
                "response-description": "Success",
                "mobile": "254712345678",
                "messageid": "10000000",
                "clientsmsid": 7,
                "networkid": 1,
            },
            {"response-code": 1003, "response-description": "Invalid mobile number", "mobile": "12345", "clientsmsid": "x-8"},
        ]
    }
    ok, bad = send_results(answer(doc).document, 2)
    assert (ok.ok, ok.code, ok.message_id, ok.network_id, ok.clientsmsid, ok.mobile) == (True, 200, "10000000", 1, 7, "254712345678")
    assert (bad.ok, bad.code, bad.description, bad.message_id, bad.network_id, bad.clientsmsid) == (
        False,
        1003,
        "Invalid mobile number",
        None,
        None,
        "x-8",
    )


def test_other_providers_shapes_mean_the_same():
    """The legacy misspelling, codes and network ids as strings, message ids as numbers."""
    doc = {
        "responses": [
            {
                "respose-code": "200",
                "respose-description": "Success",
                "mobile": 254712345678,
                "messageid": 10000000,
                "clientsmsid": 7,
                "networkid": "1",
            },
            {"respose-code": "1004", "response-description": "Low bulk credits. Balance 3.00, required 12.00", "mobile": "0712345678"},
        ]
    }
    ok, poor = send_results(answer(doc).document, 2)
    assert (ok.code, ok.message_id, ok.network_id, ok.mobile) == (200, "10000000", 1, "254712345678")
    assert (poor.code, poor.ok) == (1004, False)
    assert poor.description.startswith("Low bulk credits")


def test_camel_case_message_id_and_a_float_id_are_accepted():
    doc = {"responses": [{"responseCode": 200, "messageId": 1.0e7, "networkId": 2.0}]}
    (result,) = send_results(answer(doc).document, 1)
    assert (result.code, result.message_id, result.network_id) == (200, "10000000", 2)


@pytest.mark.parametrize(
    "doc, expected",
    [
        ({"response-code": 1006, "response-description": "Invalid credentials"}, InvalidCredentials),
        ({"respose-code": "1001", "respose-description": "Invalid sender id"}, InvalidSenderId),
        ({"response-code": "4090", "response-description": "Internal Error. Try again after 5 minutes"}, TryAgainLater),
    ],
)
def test_bare_codes_become_typed_errors(doc, expected):
    reading = answer(doc)
    assert reading.document is None
    assert type(reading.error) is expected
    assert reading.error.code == int(expected.code)
    assert reading.retryable is (expected is TryAgainLater)


def test_every_code_of_the_table_but_success_has_its_own_class():
    classes = {type(error_for(int(code))) for code in Code if code != Code.SUCCESS}
    assert len(classes) == len(Code) - 1
    assert all(issubclass(cls, SmsgwError) and cls is not SmsgwError for cls in classes)
    unknown = error_for(5555, "Provider specific")
    assert type(unknown) is SmsgwError and unknown.code == 5555 and str(unknown) == "5555 Provider specific"


def test_description_detail_is_kept_and_missing_description_filled_from_table():
    assert str(error_for(1006)) == "1006 Invalid credentials"
    assert error_for(1010, "Unsupported request type. count 3 does not match").description.endswith("does not match")


def test_http_statuses():
    busy = answer({"response-code": 4090, "response-description": "busy"}, status=503, headers={"retry-after": "2"})
    assert busy.retryable and busy.retry_after == 2.0 and isinstance(busy.error, TryAgainLater) and busy.error.http_status == 503
    limited = read_response(429, b"slow down", {})
    assert limited.retryable and isinstance(limited.error, RateLimited)
    gateway_down = read_response(502, b"<html>Bad gateway</html>", {})
    assert gateway_down.retryable and isinstance(gateway_down.error, ProtocolError)
    wrong_path = answer({"response-code": 1010, "response-description": "Unsupported request type"}, status=404)
    assert not wrong_path.retryable and isinstance(wrong_path.error, UnsupportedRequestType) and wrong_path.error.http_status == 404
    server_error = read_response(500, b"Internal Server Error", {})
    assert not server_error.retryable and isinstance(server_error.error, ProtocolError)
    not_json = read_response(200, b"<html>login</html>", {})
    assert not not_json.retryable and isinstance(not_json.error, ProtocolError)


def test_a_result_list_of_the_wrong_length_is_refused():
    doc = {"responses": [{"response-code": 200, "messageid": "1"}]}
    with pytest.raises(ProtocolError, match="2 messages sent but 1 results"):
        send_results(doc, 2)
    with pytest.raises(ProtocolError, match="no 'responses'"):
        send_results({"response-code": 200}, 1)


@pytest.mark.parametrize("credit, expected", [("545.00", "545.00"), (545, "545"), (545.1, "545.1"), ("1,234.50", "1234.50")])
def test_balance_in_any_form(credit, expected):
    found = balance_result({"response-code": "200", "credit": credit, "partner-id": 42})
    assert found.credit == Decimal(expected) and found.partner_id == "42"


def test_balance_without_credit_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        balance_result({"response-code": 200})


def test_delivery_report_with_numbers_as_strings():
    report = delivery_report_result(
        {
            "respose-code": 200,
            "message-id": 10000000,
            "delivery-status": "3",
            "delivery-description": "DeliveredToTerminal",
            "delivery-networkid": "1",
            "delivery-tat": "00:00:02",
            "delivery-time": "2026-11-25 12:50:45",
        },
        "10000000",
    )
    assert (report.message_id, report.status, report.network_id, report.final) == ("10000000", 3, 1, True)


def test_bulk_body_is_the_documented_shape_and_stable():
    credentials = Credentials("demo", "secret-key-0123456789")
    messages = [Message("0712345678", "Hello", 1), Message("+254733123456", "Habari", "b", "2026-12-01 09:00")]
    body = bulk_body(credentials, "SMSGW", messages)
    doc = orjson.loads(body)
    assert doc["count"] == 2
    assert doc["smslist"][0] == {
        "partnerID": "demo",
        "apikey": "secret-key-0123456789",
        "pass_type": "plain",
        "shortcode": "SMSGW",
        "clientsmsid": 1,
        "mobile": "0712345678",
        "message": "Hello",
    }
    assert doc["smslist"][1]["timeToSend"] == "2026-12-01 09:00"
    assert bulk_body(credentials, "SMSGW", messages) == body  # a retry sends the same bytes
    assert "secret" not in repr(credentials)


def test_bm5_pass_type_sends_the_key_base64_encoded():
    fields = Credentials("demo", "secret-key-0123456789", "bm5").fields()
    assert fields["pass_type"] == "bm5" and fields["apikey"] == "c2VjcmV0LWtleS0wMTIzNDU2Nzg5"


def test_service_url_accepts_base_with_or_without_the_services_path():
    assert service_url("https://sms.example.com", "sendbulk") == "https://sms.example.com/api/services/sendbulk"
    assert service_url("https://sms.example.com/api/services/", "getdlr") == "https://sms.example.com/api/services/getdlr"


def test_message_coercion():
    assert Message.coerce({"mobile": "0712345678", "message": "hi", "timeToSend": 5}) == Message("0712345678", "hi", None, 5)
    assert Message.coerce(("0712345678", "hi")) == Message("0712345678", "hi")
    with pytest.raises(TypeError):
        Message.coerce({"message": "no number"})


def test_retry_delays_grow_stay_jittered_and_capped():
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=8.0)
    rng = random.Random(4)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not one fixed value
    assert policy.delay(1, retry_after=5.0, rng=rng) == 5.0
    assert policy.delay(1, retry_after=600.0, rng=rng) == 8.0
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_the_client_package_needs_nothing_of_the_gateway():
    """Partners install the client to talk to any provider: importing it must not pull in
    the gateway's server, store or settings."""
    import subprocess
    import sys

    code = (
        "import sys, smsgw.client, smsgw.client.campaign\n"
        "print(sorted(m for m in sys.modules if m.startswith('smsgw.') and not m.startswith(('smsgw.client', 'smsgw.domain'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
