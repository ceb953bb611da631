"""The OpenAPI document at /docs describes what the routes really take and answer."""

from __future__ import annotations

import re
import time

import httpx
import jsonschema
import pytest

from ..helpers import DEFAULT_KEY, Gateway, LiveServer, bulk, entry, make_settings


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
    for name, methods in {
        "sendbulk": {"post"},
        "sendsms": {"get", "post"},
        "sendotp": {"get", "post"},
        "getbalance": {"get", "post"},
        "getdlr": {"get", "post"},
    }.items():
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
    sms = gateway.post(
        "/api/services/sendsms", {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "message": "m", "mobile": "0712000001"}
    ).json()
    validator(document, "SendResponse").validate(sms)
    balance = gateway.post("/api/services/getbalance", {"partnerID": "p1", "apikey": DEFAULT_KEY}).json()
    validator(document, "BalanceResponse").validate(balance)
    dlr = gateway.post("/api/services/getdlr", {"partnerID": "p1", "apikey": DEFAULT_KEY, "messageID": sent["responses"][0]["messageid"]}).json()
    validator(document, "DlrResponse").validate(dlr)
    with pytest.raises(jsonschema.ValidationError):
        validator(document, "DlrResponse").validate(balance)


def documented_schema(document: dict, path: str, method: str, answer: httpx.Response) -> dict:
    """The schema the document gives for this answer (its path, method, status and type)."""
    operation = document["paths"][path][method.lower()]
    response = operation["responses"][str(answer.status_code)]
    content_type = answer.headers["content-type"].split(";")[0]
    for name, header in response.get("headers", {}).items():
        assert name in answer.headers, f"{path} {answer.status_code}: documented header {name} missing"
        jsonschema.Draft202012Validator(header["schema"]).validate(
            int(answer.headers[name]) if header["schema"].get("type") == "integer" else answer.headers[name]
        )
    return response["content"][content_type]["schema"]


def assert_documented(document: dict, path: str, method: str, answer: httpx.Response) -> None:
    schema = documented_schema(document, path, method, answer)
    if schema.get("type") == "string":
        assert isinstance(answer.text, str)
        return
    root = {"components": document["components"], **schema}
    # oneOf: a success must match its own schema only, an error only ErrorResponse.
    jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker()).validate(answer.json())


def test_every_answer_of_every_endpoint_matches_the_document_strictly(settings, operator):
    settings = make_settings(settings.database_url.raw, SMSGW_ADMIN_TOKEN="admin-token-0123456789")
    operator.partner("p1", shortcode="SC1")
    credentials = {"partnerID": "p1", "apikey": DEFAULT_KEY}
    sms = dict(credentials, shortcode="SC1", message="hi", mobile="0712000001")
    admin = {"Authorization": "Bearer admin-token-0123456789"}
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        document = client.get("/openapi.json").json()
        exercised: set[tuple[str, str]] = set()

        def check(method: str, path: str, expect: int, url: str | None = None, documented_as: str | None = None, **kwargs) -> httpx.Response:
            answer = client.request(method, url or path, **kwargs)
            assert answer.status_code == expect, (method, path, answer.text)
            assert_documented(document, path, documented_as or method, answer)
            exercised.add((path, (documented_as or method).lower()))
            return answer

        sent = check(
            "POST",
            "/api/services/sendbulk",
            200,
            json=bulk(entry(clientsmsid=1), entry("bad", partner="", key="", shortcode="")),
            headers={"Idempotency-Key": "k1"},
        )
        assert [r["response-code"] for r in sent.json()["responses"]] == [200, 1003]
        message_id = sent.json()["responses"][0]["messageid"]
        for body in (bulk(entry(key="wrong-key-0123456789")), bulk(entry(shortcode="NOPE")), {"smslist": "x"}, bulk(entry(partner=""))):
            check("POST", "/api/services/sendbulk", 200, json=body)
        check("GET", "/api/services/sendbulk", 405, documented_as="POST")  # the wrong method's answer
        check("POST", "/api/services/sendbulk", 413, content=b"x" * (settings.max_body_bytes + 1), headers={"content-type": "application/json"})
        for name in ("sendsms", "sendotp"):
            path = f"/api/services/{name}"
            check("POST", path, 200, json=sms)
            check("GET", path, 200, params=sms)
            check("POST", path, 200, data=dict(sms, apikey="wrong-key-0123456789"))
        for method in ("GET", "POST"):
            check(method, "/api/services/getbalance", 200, **({"params": credentials} if method == "GET" else {"json": credentials}))
            check(
                method,
                "/api/services/getdlr",
                200,
                **({"params": dict(credentials, messageID=message_id)} if method == "GET" else {"json": dict(credentials, messageID=message_id)}),
            )
            check(
                method,
                "/api/services/getdlr",
                200,
                **({"params": dict(credentials, messageID="1")} if method == "GET" else {"json": dict(credentials, messageID="1")}),
            )
            check(method, "/api/services/getbalance", 200, **({"params": {"partnerID": "p1"}} if method == "GET" else {"json": {"partnerID": "p1"}}))
        for _ in range(12):  # failures past the limit: 429 with Retry-After
            answer = client.post("/api/services/getbalance", json={"partnerID": "p1", "apikey": "wrong-key-0123456789"})
            if answer.status_code == 429:
                break
        assert_documented(document, "/api/services/getbalance", "POST", answer)
        assert answer.status_code == 429

        operator.partner("kid", credits=0, parent="p1")
        check("POST", "/api/services/credit", 200, json=dict(credentials, childID="kid", amount="2.50"))
        check("POST", "/api/services/credit", 200, json=dict(credentials, childID="p1", amount="1"))  # not its child: 1005
        check("POST", "/api/services/getchildren", 200, json=credentials)
        check("POST", "/api/services/getinbox", 200, json=dict(credentials, limit=10))
        check("GET", "/api/services/getinbox", 200, params=dict(credentials, since=0))
        check("POST", "/api/services/getinbox", 200, json=dict(credentials, limit="many"))  # 1009
        check("POST", "/api/services/checkoptout", 200, json=dict(credentials, shortcode="SC1", mobile=["0712000001", 712000002]))
        check("GET", "/api/services/checkoptout", 200, params=dict(credentials, shortcode="SC1", mobile="0712000001,0712000002"))
        check("POST", "/api/services/checkoptout", 200, data=dict(credentials, shortcode="NOPE", mobile="0712000001"))  # 1001
        later = check("POST", "/api/services/sendsms", 200, json=dict(sms, timeToSend=int(time.time()) + 86400))
        check("POST", "/api/services/cancel", 200, json=dict(credentials, messageID=later.json()["responses"][0]["messageid"]))
        check("POST", "/api/services/cancel", 200, json=dict(credentials, messageID=message_id))  # not scheduled any more: 1008

        partner_path = "/api/admin/partners/{partner_id}"
        check("GET", partner_path, 200, url="/api/admin/partners/p1", headers=admin)
        check("GET", partner_path, 200, url="/api/admin/partners/ghost", headers=admin)
        check("GET", partner_path, 200, url="/api/admin/partners/p1", headers={"Authorization": "Bearer wrong"})
        topup_path = partner_path + "/topup"
        check("POST", topup_path, 200, url="/api/admin/partners/p1/topup", headers=admin, json={"units": "5"})
        check("POST", topup_path, 200, url="/api/admin/partners/p1/topup", headers=admin, json={"units": "-5"})
        for path in ("/health", "/health/live", "/health/ready", "/metrics"):
            check("GET", path, 200)

        documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
        assert documented == exercised

    with LiveServer(make_settings(settings.database_url.raw)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        off = client.get("/api/admin/partners/p1")  # the admin API without a token configured
        assert off.json()["response-code"] == 1006
        assert_documented(document, partner_path, "GET", off)


def test_the_document_declares_headers_security_and_first_entry_credentials(document: dict):
    sendbulk = document["paths"]["/api/services/sendbulk"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in sendbulk["parameters"])
    assert document["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["adminToken"]["description"],
    }
    assert document["paths"]["/api/admin/partners/{partner_id}"]["get"]["security"] == [{"adminToken": []}]
    request = validator(document, "SendBulkRequest")
    request.validate({"smslist": [entry(), {"mobile": "0712000002", "message": "second entry without credentials"}]})
    with pytest.raises(jsonschema.ValidationError):
        request.validate({"smslist": [{"mobile": "0712000002", "message": "first entry without credentials"}]})


def test_docs_pages_need_no_network(gateway: Gateway):
    for page in ("/docs", "/redoc"):
        html = gateway.get(page).text
        assert not re.search(r"https?://", html), f"{page} references an outside URL"
        assets = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", html) + re.findall(r"""url: ?['"]([^'"]+)""", html)
        assert len(assets) >= 2
        for asset in assets:
            fetched = gateway.get(asset)
            assert fetched.status_code == 200 and len(fetched.content) > 0, asset
