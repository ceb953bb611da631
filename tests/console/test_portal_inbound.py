"""A partner sets where its inbound messages go from the portal, with the CLI's rules."""

from __future__ import annotations

import re

import pytest

from .conftest import PARTNER_PASSWORDS, form_token, signed_in


def endpoint_of(console, partner_id: str) -> tuple:
    return console.gateway.operator.sql("SELECT inbound_url, inbound_method, inbound_auto_reply FROM partners WHERE id = :p", {"p": partner_id})[0]


def post_inbound(client, **fields: str):
    page = client.get("/portal/account").text
    form = page[page.index('id="inbound-form"') :]
    form_id = re.search(r'name="form_id" value="([^"]+)"', form)
    assert form_id is not None
    return client.post("/portal/account/inbound", data={"csrf": form_token(page), "form_id": form_id.group(1), **fields})


@pytest.mark.parametrize(
    ("fields", "status", "expected"),
    [
        pytest.param(
            {"url": "https://acme.example/mo", "method": "GET", "auto_reply": "on"},
            303,
            ("https://acme.example/mo", "GET", 1),
            id="url-get-auto-reply",
        ),
        pytest.param({"url": "https://acme.example/mo", "method": "POST"}, 303, ("https://acme.example/mo", "POST", 0), id="url-post"),
        pytest.param({"url": "SMPP"}, 303, (None, "SMPP", 0), id="smpp"),
        pytest.param({"url": "smpp", "auto_reply": "on"}, 400, (None, None, 0), id="smpp-with-auto-reply-refused"),
        pytest.param({"url": "ftp://acme.example/mo"}, 400, (None, None, 0), id="not-http-refused"),
        pytest.param({"url": "https://acme.example/mo", "method": "PUT"}, 400, (None, None, 0), id="bad-method-refused"),
    ],
)
def test_the_portal_sets_the_inbound_endpoint(console, fields, status, expected):
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as client:
        answer = post_inbound(client, **fields)
        assert answer.status_code == status, answer.text
        assert endpoint_of(console, "acme") == expected
        if status == 400:
            assert 'id="error"' in answer.text
        shown = client.get("/portal/account").text
    assert endpoint_of(console, "rival") == (None, None, 0)
    if expected[1] == "SMPP":
        assert "as deliver_sm to a receiver bind" in shown


def test_an_empty_url_stops_forwarding(console):
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as client:
        assert post_inbound(client, url="https://acme.example/mo", method="POST").status_code == 303
        assert post_inbound(client, url="").status_code == 303
    assert endpoint_of(console, "acme") == (None, None, 0)
