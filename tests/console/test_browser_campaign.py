"""A partner's campaign in a real browser (headless Chromium) against a gateway that delivers
to the built-in simulated carrier: upload a 2,000-row CSV, check the previewed cost, confirm,
watch it finish, and compare the chart's figures and the downloaded delivery report with the
store."""

from __future__ import annotations

import csv
import io
import json

from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from ..dispatch.conftest import number
from .conftest import PARTNER_PASSWORDS, screenshot
from .test_browser import sign_in, submit, text_of

ROWS = 2000


def test_a_partner_sends_a_2000_row_campaign_and_its_report_matches_the_store(delivering_console, browser, tmp_path):
    console = delivering_console
    operator = console.gateway.operator
    operator.sql("UPDATE partners SET balance = 500000 WHERE id = 'acme'")
    sheet = tmp_path / "customers.csv"
    with open(sheet, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mobile", "name", "amount"])
        writer.writerows([number(i), f"Customer {i}", f"{i % 50}.00"] for i in range(ROWS))

    sign_in(browser, console.url, "portal", "acme", PARTNER_PASSWORDS["acme"])
    submit(browser, "Campaigns", By.LINK_TEXT)
    submit(browser, "#new-campaign")
    form = browser.find_element(By.ID, "campaign-upload")
    form.find_element(By.NAME, "file").send_keys(str(sheet))
    form.find_element(By.NAME, "template").send_keys("Dear {name}, your bill is {amount}.")
    submit(browser, "#campaign-upload button")

    assert (text_of(browser, "rows"), text_of(browser, "valid"), text_of(browser, "invalid")) == (str(ROWS), str(ROWS), "0")
    assert text_of(browser, "cost") == "2000.00"  # one part at 1.00 a message on every network of the table
    assert text_of(browser, "balance") == "5000.00"
    assert "Dear Customer 0, your bill is 0.00." in browser.find_element(By.ID, "samples").text
    assert operator.sql("SELECT count(*) FROM messages") == [(0,)]
    screenshot(browser, "portal-campaign-preview")
    submit(browser, "#campaign-confirm button")

    # The page refreshes itself until every message is final.
    WebDriverWait(browser, 180, poll_frequency=0.5).until(
        lambda driver: driver.find_element(By.ID, "campaign-status").get_attribute("data-finished") == "yes"
    )
    campaign_id = int(browser.current_url.rsplit("/", 1)[-1])
    assert text_of(browser, "accepted") == str(ROWS)
    assert text_of(browser, "charged") == "2000.00"
    assert operator.balance("acme") == 5000_00 - ROWS * 100
    stored = dict(operator.sql("SELECT state, count(*) FROM messages GROUP BY state"))
    assert sum(stored.values()) == ROWS
    # The chart's figures, as the page received them, are the store's counts by state.
    received = json.loads(browser.find_element(By.ID, "states-data").get_attribute("textContent"))
    assert {entry["state"]: entry["messages"] for entry in received if entry["messages"]} == stored
    bars = browser.find_elements(By.CSS_SELECTOR, "#states-chart rect")
    assert [bar.find_element(By.TAG_NAME, "title").get_attribute("textContent").rsplit(": ", 1)[1] for bar in bars] == [
        str(entry["messages"]) for entry in received
    ]
    screenshot(browser, "portal-campaign")

    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("href") == f"{console.url}/portal/campaigns/{campaign_id}/report.csv"
    # Fetched by the page itself, with its session cookie, as the link downloads it.
    report = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => r.text()).then(done);", link.get_attribute("href")
    )
    rows = list(csv.DictReader(io.StringIO(report)))
    in_store = operator.sql("SELECT id, msisdn, state, clientsmsid, done_at IS NOT NULL FROM messages ORDER BY id")
    assert [(int(r["messageid"]), r["mobile"], int(r["delivery-status"]), r["clientsmsid"], bool(r["final"])) for r in rows] == [
        (message_id, msisdn, state, clientsmsid, bool(final)) for message_id, msisdn, state, clientsmsid, final in in_store
    ]
    assert sorted(int(r["clientsmsid"]) for r in rows) == list(range(2, ROWS + 2))  # each row's line in the CSV

    submit(browser, "Campaigns", By.LINK_TEXT)
    listed = browser.find_element(By.CSS_SELECTOR, f'#campaigns tr[data-campaign="{campaign_id}"]').text
    assert "customers.csv" in listed and "accepted" in listed
