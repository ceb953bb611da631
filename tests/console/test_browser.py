"""The console and the portal in a real browser (headless Chromium) against a real gateway on
loopback: sign in, top up through the form, search messages, open them, and what one partner's
session may not see."""

from __future__ import annotations

import json

from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from smsgw.domain.money import format_units

from .conftest import OPERATOR, OPERATOR_PASSWORD, PARTNER_PASSWORDS, screenshot

XSS = '<script>document.title="owned"</script><img src=x onerror="document.title=\'owned\'">'


def sign_in(browser, url: str, area: str, name: str, password: str) -> None:
    browser.get(f"{url}/{area}/login")
    browser.find_element(By.NAME, "username" if area == "console" else "partner").send_keys(name)
    browser.find_element(By.NAME, "password").send_keys(password)
    submit(browser, "#login button")


def submit(browser, selector: str, by: str = By.CSS_SELECTOR) -> None:
    """Clicks the button or link and waits until the page it leads to has loaded: the old
    page is marked, and the mark is gone on the new one."""
    browser.execute_script("document.documentElement.dataset.left = '1'")
    browser.find_element(by, selector).click()
    WebDriverWait(browser, 15).until(
        lambda driver: driver.execute_script("return document.readyState === 'complete' && !document.documentElement.dataset.left")
    )


def text_of(browser, element_id: str) -> str:
    return browser.find_element(By.ID, element_id).text


def chart_data(browser) -> list[dict]:
    # The figures the page received, as the chart was drawn from them.
    return json.loads(browser.find_element(By.ID, "balance-data").get_attribute("textContent"))


def test_an_operator_signs_in_tops_up_a_partner_and_sees_it_in_the_ledger_and_audit_log(console, browser):
    sign_in(browser, console.url, "console", OPERATOR, OPERATOR_PASSWORD)
    assert browser.current_url == f"{console.url}/console/partners"
    assert text_of(browser, "signed-in-as") == OPERATOR
    rows = {row.get_attribute("data-partner"): row.text for row in browser.find_elements(By.CSS_SELECTOR, "#partners tbody tr")}
    assert set(rows) == {"acme", "rival"}
    assert "1000.00" in rows["acme"]
    screenshot(browser, "console-partners")

    submit(browser, "acme", By.LINK_TEXT)
    assert browser.current_url == f"{console.url}/console/partners/acme"
    assert text_of(browser, "balance") == "1000.00"
    form = browser.find_element(By.ID, "topup")
    assert form.get_attribute("action") == f"{console.url}/console/partners/acme/topup"
    form.find_element(By.NAME, "units").send_keys("250.75")
    form.find_element(By.NAME, "reference").send_keys("INV-2026-0042")
    submit(browser, "#topup button")

    assert text_of(browser, "notice") == "Top-up recorded."
    assert text_of(browser, "balance") == "1250.75"
    assert console.gateway.operator.balance("acme") == 1250_75
    ledger = console.gateway.operator.ledger("acme")
    assert [(e["kind"], e["amount"], e["reference"]) for e in ledger][-1] == ("topup", 250_75, "INV-2026-0042")
    # The chart is drawn from the ledger's balances, in order.
    assert chart_data(browser) == [{"at": e["created_at"], "balance": format_units(e["balance_after"])} for e in ledger]
    assert browser.find_element(By.CSS_SELECTOR, "#balance-chart polyline").get_attribute("points")
    screenshot(browser, "console-partner")

    submit(browser, "Audit log", By.LINK_TEXT)
    entries = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    assert any(f"{OPERATOR} top-up acme 250.75 units, reference 'INV-2026-0042', balance 1250.75" in e for e in entries), entries
    assert any(f"{OPERATOR} sign-in {OPERATOR}" in e for e in entries), entries

    submit(browser, "form.logout button")
    assert browser.current_url == f"{console.url}/console/login"
    browser.get(f"{console.url}/console/partners/acme")
    assert browser.current_url == f"{console.url}/console/login"


def test_a_wrong_password_is_refused_in_the_browser(console, browser):
    sign_in(browser, console.url, "console", OPERATOR, "not the password at all")
    assert text_of(browser, "error") == "Wrong name or password."
    browser.get(f"{console.url}/console/partners")
    assert browser.current_url == f"{console.url}/console/login"


def test_a_partner_finds_its_messages_and_never_another_partners(console, browser):
    own = console.send("acme", "0712345678", "Your code is 4711")
    marked = console.send("acme", "0733000111", XSS)
    other = console.send("rival", "0712345678", "rival's private text")

    sign_in(browser, console.url, "portal", "acme", PARTNER_PASSWORDS["acme"])
    assert browser.current_url == f"{console.url}/portal/messages"
    listed = [int(row.get_attribute("data-message")) for row in browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr[data-message]")]
    assert listed == [marked, own]
    assert text_of(browser, "balance") == format_units(console.gateway.operator.balance("acme"))
    screenshot(browser, "portal-messages")

    search = browser.find_element(By.NAME, "q")
    search.send_keys("+254712345678")
    submit(browser, "#search button")
    listed = [int(row.get_attribute("data-message")) for row in browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr[data-message]")]
    assert listed == [own]  # rival's message to the same number is not found

    browser.get(f"{console.url}/portal/messages/{marked}")
    assert text_of(browser, "message-text") == XSS  # shown as text
    assert browser.title != "owned"
    assert browser.find_elements(By.CSS_SELECTOR, "#message-text *") == []
    assert text_of(browser, "message-state") == "Scheduled (1)"
    screenshot(browser, "portal-message")

    browser.get(f"{console.url}/portal/messages/{other}")
    assert text_of(browser, "error") == "No such message."
    assert "rival" not in browser.page_source.replace('"/portal', "")

    browser.get(f"{console.url}/portal/statement")
    ledger = console.gateway.operator.ledger("acme")
    assert chart_data(browser) == [{"at": e["created_at"], "balance": format_units(e["balance_after"])} for e in ledger]


def test_an_operator_searches_every_partners_messages(console, browser):
    acme = console.send("acme", "0712345678", "from acme")
    rival = console.send("rival", "0712345678", "from rival")
    console.send("rival", "0733000111", "another number")
    sign_in(browser, console.url, "console", OPERATOR, OPERATOR_PASSWORD)
    browser.get(f"{console.url}/console/messages?q=0712345678")
    listed = [int(row.get_attribute("data-message")) for row in browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr[data-message]")]
    assert listed == [rival, acme]
    browser.get(f"{console.url}/console/messages?q={acme}")
    listed = [int(row.get_attribute("data-message")) for row in browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr[data-message]")]
    assert listed == [acme]
    submit(browser, str(acme), By.LINK_TEXT)
    assert text_of(browser, "message-id") == str(acme)
    assert text_of(browser, "message-text") == "from acme"
    assert "Accepted" in text_of(browser, "history")
    screenshot(browser, "console-message")


def test_an_operator_creates_a_partner_adds_a_shortcode_and_the_partner_can_send(console, browser):
    sign_in(browser, console.url, "console", OPERATOR, OPERATOR_PASSWORD)
    form = browser.find_element(By.ID, "create-partner")
    form.find_element(By.NAME, "partner_id").send_keys("shop")
    form.find_element(By.NAME, "name").send_keys("Shop <Ltd>")
    form.find_element(By.NAME, "credits").send_keys("40")
    submit(browser, "#create-partner button")
    key = text_of(browser, "api-key")
    submit(browser, "#to-partner")
    assert text_of(browser, "partner-name") == "Shop <Ltd>"
    assert text_of(browser, "balance") == "40.00"

    form = browser.find_element(By.ID, "add-shortcode")
    form.find_element(By.NAME, "shortcode").send_keys("SHOP")
    form.find_element(By.NAME, "networks").send_keys("1")
    submit(browser, "#add-shortcode button")
    assert text_of(browser, "notice") == "Shortcode added."
    assert text_of(browser, "shortcodes") == "SHOP (networks 1)"

    fields = {"partnerID": "shop", "apikey": key, "shortcode": "SHOP", "message": "hello", "mobile": "0712345678"}
    answer = console.gateway.post("/api/services/sendsms", data=fields).json()["responses"][0]
    assert answer["response-code"] == 200, answer
    actions = console.gateway.operator.sql("SELECT operator, action, subject FROM audit_log WHERE action <> 'sign-in' ORDER BY id")
    assert actions == [(OPERATOR, "create-partner", "shop"), (OPERATOR, "add-shortcode", "shop")]


def test_the_dashboard_shows_the_queue_and_the_messages_accepted_this_hour(console, browser):
    for n in range(3):
        console.send("acme", f"071234567{n}", f"acme {n}")
    console.send("rival", "0712345678,0733000111", "two at once")
    sign_in(browser, console.url, "console", OPERATOR, OPERATOR_PASSWORD)
    browser.get(f"{console.url}/console/dashboard")
    queue = {row.text.rsplit(" ", 1)[0]: row.text.rsplit(" ", 1)[1] for row in browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")}
    assert queue["Scheduled bulk"] == "5"
    assert queue["SentToNetwork bulk"] == "0"
    hourly = json.loads(browser.find_element(By.ID, "hourly-data").get_attribute("textContent"))
    assert len(hourly) == 24
    assert sum(h["accepted"] for h in hourly) == 5
    assert sum(h["accepted"] for h in hourly[-2:]) == 5  # this hour (or the last, had it just turned)
    heights = [float(b.get_attribute("height")) for b in browser.find_elements(By.CSS_SELECTOR, "#hourly-chart rect.bar")]
    busiest = max(range(24), key=lambda i: hourly[i]["accepted"])
    assert heights[busiest] == 160.0
    assert all(h == 0.0 for i, h in enumerate(heights) if hourly[i]["accepted"] == 0)
    screenshot(browser, "console-dashboard")


def test_a_partner_rotates_its_api_key_and_sets_its_callback(console, browser):
    sign_in(browser, console.url, "portal", "acme", PARTNER_PASSWORDS["acme"])
    submit(browser, "Account", By.LINK_TEXT)
    submit(browser, "#rotate-key button")
    key = text_of(browser, "shown-secret")

    def balance_code(api_key: str) -> int:
        return console.gateway.post("/api/services/getbalance", data={"partnerID": "acme", "apikey": api_key}).json()["response-code"]

    assert balance_code(key) == 200
    assert balance_code("test-key-0123456789abcdef") == 1006  # the old key stopped working

    field = browser.find_element(By.CSS_SELECTOR, "#callback input[name=url]")
    field.send_keys("https://acme.example/dlr")
    submit(browser, "#callback button")
    secret = text_of(browser, "shown-secret")
    assert text_of(browser, "callback-url") == "https://acme.example/dlr"
    assert console.gateway.operator.sql("SELECT callback_url, callback_secret FROM partners WHERE id = 'acme'") == [
        ("https://acme.example/dlr", secret)
    ]
    assert console.gateway.operator.sql("SELECT callback_url FROM partners WHERE id = 'rival'") == [(None,)]
