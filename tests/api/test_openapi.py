"""The OpenAPI document at /docs describes what the routes really take and answer."""

from __future__ import annotations

import jsonschema
import pytest

from ..helpers import DEFAULT_KEY, Gateway, bulk, entry


@pytest.fixture
def document(gateway: Gateway) -> dict:
    return gateway.get("/openapi.json").json()


def validator(document: dict, name: str) -> jsonschema.Draft202012Validator:
    root = {"components": document["components"], "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(root)


def test_docs_page_is_served(gateway: Gateway):
    page = gateway.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_every_partner_endpoint_is_documented_with_its_body(document: dict):
    paths = document["paths"]
    for name, methods in {"sendbulk": {"post"}, "sendsms": {"get", "post"}, "sendotp": {"get", "post"}, "getbalance": {"get", "post"}, "getdlr": {"get", "post"}}.items():
        operations = paths[f"/api/services/{name}"]
        assert set(operations) == methods
        assert "requestBody" in operations["post"]
        assert {"200", "405", "413"} <= set(operations["post"]["responses"])


def test_seed_style_request_matches_the_documented_request(document: dict):
    body = bulk(entry(clientsmsid=1), entry("0733000001", clientsmsid="a"))
    validator(document, "SendBulkRequest").validate(body)
    with pytest.raises(jsonschema.ValidationError):
        validator(document, "SendBulkRequest").validate({"smslist": [{"mobile": "1"}]})


def test_real_answers_match_the_documented_answers(gateway: Gateway, document: dict):
    sent = gateway.post("/api/services/sendbulk", bulk(entry(clientsmsid=3), entry("bad"))).json()
    validator(document, "SendResponse").validate(sent)
    validator(document, "ErrorResponse").validate(gateway.post("/api/services/sendbulk", bulk(entry(key="x"))).json())
    sms = gateway.post("/api/services/sendsms", {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "message": "m", "mobile": "0712000001"}).json()
    validator(document, "SendResponse").validate(sms)
    balance = gateway.post("/api/services/getbalance", {"partnerID": "p1", "apikey": DEFAULT_KEY}).json()
    validator(document, "BalanceResponse").validate(balance)
    dlr = gateway.post("/api/services/getdlr", {"partnerID": "p1", "apikey": DEFAULT_KEY, "messageID": sent["responses"][0]["messageid"]}).json()
    validator(document, "DlrResponse").validate(dlr)
    with pytest.raises(jsonschema.ValidationError):
        validator(document, "DlrResponse").validate(balance)
