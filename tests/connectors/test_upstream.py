"""The upstream connector's pure parts: answers of another provider as verdicts, getdlr answers
as final states, and the route URL."""

from __future__ import annotations

import pytest

from smsgw.connectors.base import Verdict
from smsgw.connectors.upstream import state_of, state_of_report, verdict_of
from smsgw.dispatch.routing import RouteError, UpstreamConfig, parse_route_url
from smsgw.domain.states import DeliveryState


@pytest.mark.parametrize(
    ("entry", "verdict", "unanswered"),
    [
        pytest.param({"response-code": 200, "messageid": "10000001"}, Verdict.ACCEPTED, False, id="accepted"),
        pytest.param({"response-code": "200", "messageid": 10000001}, Verdict.ACCEPTED, False, id="accepted-other-json-types"),
        pytest.param({"response-code": 200}, Verdict.RETRY, True, id="accepted-without-id"),
        pytest.param({"response-code": 1002}, Verdict.FAILED, False, id="network-not-allowed"),
        pytest.param({"response-code": 1003}, Verdict.FAILED, False, id="invalid-mobile"),
        pytest.param({"response-code": 1009}, Verdict.FAILED, False, id="unsupported-data"),
        pytest.param({"response-code": 1011}, Verdict.FAILED, False, id="opted-out-there"),
        pytest.param({"response-code": 1004}, Verdict.RETRY, False, id="the-route-has-no-credit"),
        pytest.param({"response-code": 1005, "messageid": "10000001"}, Verdict.ACCEPTED, False, id="outcome-unknown-there-followed-by-its-id"),
        pytest.param({"response-code": 1005}, Verdict.RETRY, True, id="store-unavailable-there"),
        pytest.param({"response-code": 9999}, Verdict.RETRY, False, id="unknown-code"),
        pytest.param("garbage", Verdict.RETRY, True, id="not-an-object"),
    ],
)
def test_entry_answers_become_verdicts(entry, verdict: Verdict, unanswered: bool):
    outcome = verdict_of(entry)
    assert (outcome.verdict, outcome.unanswered) == (verdict, unanswered)
    if verdict is Verdict.ACCEPTED:
        assert outcome.smsc_message_ids == ("10000001",)


@pytest.mark.parametrize(
    ("answer", "state"),
    [
        pytest.param({"response-code": 200, "delivery-description": "DeliveredToTerminal"}, DeliveryState.DELIVERED, id="delivered"),
        pytest.param({"response-code": 200, "delivery-description": "DeliveryImpossible"}, DeliveryState.DELIVERY_IMPOSSIBLE, id="impossible"),
        pytest.param({"response-code": 200, "delivery-description": "SentToNetwork"}, None, id="not-final"),
        pytest.param({"response-code": 200, "delivery-description": "Scheduled"}, None, id="scheduled"),
        pytest.param(
            {"response-code": 200, "delivery-status": 8, "delivery-description": "SentToNetwork"},
            DeliveryState.NO_RECEIPT,
            id="final-without-receipt",
        ),
        pytest.param({"response-code": 1008, "response-description": "No Delivery Report"}, None, id="unknown-there"),
        pytest.param({"response-code": 200, "delivery-description": "Whatever"}, None, id="unknown-description"),
    ],
)
def test_getdlr_answers_become_final_states(answer, state):
    assert state_of(answer) is state


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        pytest.param(
            {"messageid": "10000001", "description": "DeliveredToTerminal", "status": 3}, ("10000001", DeliveryState.DELIVERED), id="delivered"
        ),
        pytest.param({"messageid": 10000001, "description": "DeliveryImpossible"}, ("10000001", DeliveryState.DELIVERY_IMPOSSIBLE), id="number-id"),
        pytest.param({"messageid": "7", "description": "SentToNetwork", "status": 8}, ("7", DeliveryState.NO_RECEIPT), id="final-without-receipt"),
        pytest.param({"messageid": "7", "description": "SentToNetwork", "status": 2}, None, id="not-final"),
        pytest.param({"messageid": "7", "description": "Scheduled"}, None, id="scheduled"),
        pytest.param({"messageid": "7", "description": "Whatever"}, None, id="unknown-description"),
        pytest.param({"description": "DeliveredToTerminal"}, None, id="no-messageid"),
        pytest.param(["DeliveredToTerminal"], None, id="not-an-object"),
    ],
)
def test_pushed_reports_become_final_states(report, expected):
    assert state_of_report(report) == expected


def test_upstream_url():
    config = parse_route_url("sendbulk+https://acme:s3cr%40t@api.example:8443/?shortcode=ACME&networks=2&priority=2&weight=4&name=backup")
    assert isinstance(config, UpstreamConfig)
    assert (config.name, config.base_url, config.partner_id, config.api_key, config.shortcode) == (
        "backup",
        "https://api.example:8443",
        "acme",
        "s3cr@t",
        "ACME",
    )
    assert (config.networks, config.priority, config.weight) == (frozenset({2}), 2, 4)
    assert "s3cr" not in repr(config) and "s3cr" not in config.display
    assert (config.poll_rate, config.secret) == (None, None)  # polling at SMSGW_UPSTREAM_POLL_RATE, no pushes


def test_upstream_url_with_a_push_secret():
    config = parse_route_url("sendbulk+https://acme:key@api.example/?secret=push-s3cret&poll_rate=5")
    assert isinstance(config, UpstreamConfig)
    assert (config.secret, config.poll_rate) == ("push-s3cret", 5.0)
    assert "push-s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("sendbulk+https://api.example/", "credentials", id="no-credentials"),
        pytest.param("sendbulk+https://acme@api.example/", "credentials", id="no-key"),
        pytest.param("sendbulk+http://acme:k@h/?colour=red", "unknown options colour", id="unknown-option"),
        pytest.param("sendbulk+http://acme:key@h/?weight=0", "weight must be between", id="bad-weight"),
        pytest.param("sendbulk+http://acme:key@h/?secret=hidden&weight=x", "weight must be a number", id="secret-masked"),
    ],
)
def test_bad_upstream_urls(url: str, message: str):
    with pytest.raises(RouteError, match=message) as refused:
        parse_route_url(url)
    assert ":key@" not in str(refused.value) and "hidden" not in str(refused.value)
