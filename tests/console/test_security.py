"""What the console and the portal refuse, over real HTTP: forms without their CSRF token,
another partner's ids, expired and ended sessions, guessing; and how the cookies are set."""

from __future__ import annotations

import asyncio
import functools
import re

import httpx
import pytest

from smsgw.api.guard import FAILURES_PER_WINDOW

from .conftest import OPERATOR, OPERATOR_PASSWORD, PARTNER_PASSWORDS, form_token, signed_in


def operator_client(console):
    return signed_in(console.url, "console", OPERATOR, OPERATOR_PASSWORD)


def csrf_of(client: httpx.Client, page: str) -> str:
    return form_token(client.get(page).text)


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/console/partners/acme/topup", {"units": "100", "reference": "forged"}),
        ("/console/partners/acme/status", {"status": "suspended"}),
        ("/console/partners/acme/portal-password", {"password": "attacker chosen 1"}),
        ("/console/logout", {}),
    ],
    ids=["topup", "status", "portal-password", "logout"],
)
@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
def test_an_operator_form_without_the_sessions_csrf_token_changes_nothing(console, path, fields, token):
    with operator_client(console) as client:
        before = console.gateway.operator.sql("SELECT balance, status FROM partners WHERE id = 'acme'")
        data = dict(fields, **({"csrf": token} if token else {}))
        answer = client.post(path, data=data)
        assert answer.status_code == 403
        assert "CSRF" in answer.text
        assert console.gateway.operator.sql("SELECT balance, status FROM partners WHERE id = 'acme'") == before
        assert client.get("/console/partners").status_code == 200  # still signed in: logout was refused too
        assert console.gateway.operator.sql("SELECT count(*) FROM audit_log WHERE action <> 'sign-in'") == [(0,)]


def test_a_csrf_token_of_another_session_is_refused(console):
    with operator_client(console) as first, operator_client(console) as second:
        answer = first.post("/console/partners/acme/topup", data={"csrf": csrf_of(second, "/console/partners/acme"), "units": "5"})
        assert answer.status_code == 403
        assert console.gateway.operator.balance("acme") == 1000_00


@pytest.mark.parametrize("area", ["console", "portal"])
def test_a_sign_in_form_needs_its_own_cookie_token(console, area):
    name, password = (OPERATOR, OPERATOR_PASSWORD) if area == "console" else ("acme", PARTNER_PASSWORDS["acme"])
    field = "username" if area == "console" else "partner"
    with httpx.Client(base_url=console.url) as client:
        answer = client.post(f"/{area}/login", data={"csrf": "made-up", field: name, "password": password})
        assert answer.status_code == 403
        assert not any(cookie.startswith(f"smsgw_{area}_session=") for cookie in answer.headers.get_list("set-cookie"))


def test_one_partners_session_opens_none_of_the_others_ids(console):
    theirs = console.send("rival", "0712345678", "rival only")
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as acme:
        nowhere = acme.get("/portal/messages/999999999")
        answer = acme.get(f"/portal/messages/{theirs}")
        assert answer.status_code == 404
        assert answer.text == nowhere.text  # the same answer as an id that does not exist
        for page in ("/portal/messages", f"/portal/messages?q={theirs}", "/portal/messages?q=0712345678", "/portal/statement"):
            shown = acme.get(page)
            assert shown.status_code == 200
            # The query itself is echoed (search box, heading, download link); nothing else may name the id.
            echoes = (f'value="{theirs}"', f"“{theirs}”", f"q={theirs}")
            rest = functools.reduce(lambda text, echo: text.replace(echo, ""), echoes, shown.text)
            assert "rival" not in rest and str(theirs) not in rest
        # The portal's session is not the console's.
        assert acme.get("/console/partners").headers["location"] == "/console/login"


def test_an_expired_session_is_signed_out(console):
    with operator_client(console) as client:
        assert client.get("/console/partners").status_code == 200
        console.gateway.operator.sql("UPDATE web_sessions SET expires_at = 1")
        answer = client.get("/console/partners")
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/login")


def test_signing_out_ends_the_session_for_a_copied_cookie_too(console):
    with operator_client(console) as client:
        cookie = client.cookies.get("smsgw_console_session")
        assert client.post("/console/logout", data={"csrf": csrf_of(client, "/console/partners")}).status_code == 303
    with httpx.Client(base_url=console.url, cookies={"smsgw_console_session": cookie}) as copy:
        assert copy.get("/console/partners").status_code == 303
    assert console.gateway.operator.sql("SELECT count(*) FROM web_sessions") == [(0,)]


def test_a_new_portal_password_ends_the_partners_sessions(console):
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as partner, operator_client(console) as operator:
        assert partner.get("/portal/messages").status_code == 200
        token = csrf_of(operator, "/console/partners/acme")
        assert operator.post("/console/partners/acme/portal-password", data={"csrf": token, "password": "a brand new one 9"}).status_code == 303
        assert partner.get("/portal/messages").status_code == 303
    with signed_in(console.url, "portal", "acme", "a brand new one 9"):
        pass
    audit = console.gateway.operator.sql("SELECT operator, action, subject FROM audit_log WHERE action = 'portal-password'")
    assert audit == [(OPERATOR, "portal-password", "acme")]


def test_guessing_a_password_is_throttled_even_for_the_right_one(console):
    with httpx.Client(base_url=console.url) as client:
        token = form_token(client.get("/console/login").text)
        statuses = [
            client.post("/console/login", data={"csrf": token, "username": OPERATOR, "password": f"guess number {n}"}).status_code
            for n in range(FAILURES_PER_WINDOW)
        ]
        assert statuses == [401] * FAILURES_PER_WINDOW
        answer = client.post("/console/login", data={"csrf": token, "username": OPERATOR, "password": OPERATOR_PASSWORD})
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) > 0
    # The portal counts apart: a partner is not locked out by guesses at an operator.
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]):
        pass


def test_session_cookies_are_http_only_same_site_and_scoped_to_their_area(console):
    with httpx.Client(base_url=console.url) as client:
        token = form_token(client.get("/console/login").text)
        answer = client.post("/console/login", data={"csrf": token, "username": OPERATOR, "password": OPERATOR_PASSWORD})
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("smsgw_console_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback
        page = client.get("/console/partners")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"


def test_behind_a_tls_proxy_the_session_cookie_is_secure(database_url, operator):
    from ..helpers import LiveServer, make_settings

    settings = make_settings(database_url, SMSGW_TRUSTED_PROXIES="127.0.0.1/32")
    operator.console_operator(OPERATOR, OPERATOR_PASSWORD)
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, headers={"X-Forwarded-Proto": "https"}) as client:
        form = client.get("/console/login")
        assert "Secure" in form.headers["set-cookie"]
        token = form_token(form.text)
        # The client speaks plain HTTP to the "proxy's" backend, so it sends the Secure cookie by hand.
        answer = client.post(
            "/console/login",
            data={"csrf": token, "username": OPERATOR, "password": OPERATOR_PASSWORD},
            headers={"Cookie": f"smsgw_login={token}"},
        )
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("smsgw_console_session="))
        assert "Secure" in cookie


def test_partner_names_and_references_render_as_text(console):
    console.gateway.operator.sql("UPDATE partners SET name = '<b id=\"injected\">x</b>' WHERE id = 'acme'")
    with operator_client(console) as client:
        token = csrf_of(client, "/console/partners/acme")
        assert client.post("/console/partners/acme/topup", data={"csrf": token, "units": "1", "reference": "<script>x()</script>"}).status_code == 303
        for page in ("/console/partners", "/console/partners/acme", "/console/audit"):
            html = client.get(page).text
            assert "<b id=" not in html and "<script>x()" not in html
        assert "&lt;script&gt;x()&lt;/script&gt;" in client.get("/console/partners/acme").text


@pytest.mark.parametrize(
    ("units", "message"),
    [("abc", "is not an amount"), ("0", "must not be zero"), ("-2000", "below zero"), ("1.234", "is not an amount")],
    ids=["not-a-number", "zero", "below-zero", "three-decimals"],
)
def test_a_bad_top_up_is_refused_and_changes_nothing(console, units, message):
    with operator_client(console) as client:
        answer = client.post("/console/partners/acme/topup", data={"csrf": csrf_of(client, "/console/partners/acme"), "units": units})
        assert answer.status_code == 400
        assert message in answer.text
    assert console.gateway.operator.balance("acme") == 1000_00
    assert console.gateway.operator.sql("SELECT count(*) FROM audit_log WHERE action = 'top-up'") == [(0,)]


def test_suspending_from_the_console_refuses_the_partners_api_requests(console):
    with operator_client(console) as client:
        token = csrf_of(client, "/console/partners/acme")
        assert client.post("/console/partners/acme/status", data={"csrf": token, "status": "suspended"}).status_code == 303
    answer = console.gateway.post("/api/services/getbalance", data={"partnerID": "acme", "apikey": "test-key-0123456789abcdef"})
    assert answer.json()["response-code"] == 1006
    assert console.gateway.operator.sql("SELECT operator, action, subject, detail FROM audit_log WHERE action = 'status'") == [
        (OPERATOR, "status", "acme", "suspended")
    ]


@pytest.mark.parametrize(
    ("path", "fields"), [("/portal/account/key", {}), ("/portal/account/callback", {"url": "https://evil.example/"})], ids=["rotate-key", "callback"]
)
def test_a_portal_form_without_the_csrf_token_changes_nothing(console, path, fields):
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as client:
        before = console.gateway.operator.sql("SELECT api_key_hash, callback_url FROM partners WHERE id = 'acme'")
        assert client.post(path, data=fields).status_code == 403
        assert console.gateway.operator.sql("SELECT api_key_hash, callback_url FROM partners WHERE id = 'acme'") == before


@pytest.mark.parametrize("url", ["ftp://acme.example/dlr", "not a url", "http://"], ids=["scheme", "words", "no-host"])
def test_a_bad_callback_url_is_refused(console, url):
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as client:
        token = csrf_of(client, "/portal/account")
        answer = client.post("/portal/account/callback", data={"csrf": token, "url": url})
        assert answer.status_code == 400
    assert console.gateway.operator.sql("SELECT callback_url FROM partners WHERE id = 'acme'") == [(None,)]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_form_past_its_size_limit_is_refused_before_it_is_read(console, chunked):
    from smsgw.console.web import MAX_FORM_BYTES

    body = b"csrf=x&units=1&reference=" + b"a" * MAX_FORM_BYTES
    content = iter([body[i : i + 8192] for i in range(0, len(body), 8192)]) if chunked else body  # an iterator goes out chunked
    with operator_client(console) as client:
        answer = client.post("/console/partners/acme/topup", content=content, headers={"content-type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 413
        assert console.gateway.operator.balance("acme") == 1000_00


def test_a_portal_search_by_number_finds_the_partners_messages_on_both_sides_of_the_roll_mark_and_no_others(console, monkeypatch):
    from smsgw.store import rollups
    from smsgw.store import store as store_module
    from smsgw.store.store import Store, now_ms

    monkeypatch.setattr(store_module, "ID_BLOCK_SECONDS", 0.0)  # each request a fresh block: a rolled range is complete at once

    async def roll() -> int:
        store = Store.open(console.gateway.server.settings.database_url)
        try:
            while (await store.write(lambda conn: rollups.roll_step(conn, "test", now_ms(), 1000, settle_ms=0))).more:
                pass
            return await store.read(rollups.mark)
        finally:
            await store.close()

    rolled = [console.send("acme", "0712345678", f"old {n}") for n in range(3)] + [console.send("rival", "0712345678", "rival old")]
    mark = asyncio.run(roll())
    recent = [console.send("acme", "0712345678", "new"), console.send("rival", "0712345678", "rival new")]
    assert max(rolled) < mark <= min(recent)
    assert console.gateway.operator.sql("SELECT count(*) FROM message_numbers") == [(4,)]
    with signed_in(console.url, "portal", "acme", PARTNER_PASSWORDS["acme"]) as acme:
        page = acme.get("/portal/messages?q=0712345678").text
    shown = {int(found) for found in re.findall(r'href="/portal/messages/(\d+)"', page)}
    assert shown == {rolled[0], rolled[1], rolled[2], recent[0]}
    assert "rival" not in page
