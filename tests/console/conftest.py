"""Fixtures of the console tests: a gateway with a console operator and a partner with a portal
password, and headless Chromium (Debian's chromium and chromium-driver) driven by Selenium.

Without Chromium the browser tests are skipped with that reason; CI sets SMSGW_REQUIRE_BROWSER=1,
which turns it into a failure (as SMSGW_REQUIRE_POSTGRES does for PostgreSQL). Set
SMSGW_SCREENSHOTS to a directory (docs/screenshots) to save pictures of the main pages.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from smsgw.dispatch.runtime import DeliveryPlan, run_delivery

from ..helpers import DEFAULT_KEY, Gateway, LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OPERATOR, OPERATOR_PASSWORD = "alice", "correct horse battery"
PARTNER_PASSWORDS = {"acme": "acme portal secret 1", "rival": "rival portal secret 2"}


@dataclass
class Console:
    gateway: Gateway

    @property
    def url(self) -> str:
        return self.gateway.url

    def send(self, partner_id: str, mobile: str, message: str, shortcode: str | None = None) -> int:
        """One message through the partner API; its message id."""
        fields = {"partnerID": partner_id, "apikey": DEFAULT_KEY, "shortcode": shortcode or partner_id.upper(), "message": message, "mobile": mobile}
        answer = self.gateway.post("/api/services/sendsms", data=fields).json()["responses"][0]
        assert answer["response-code"] == 200, answer
        return int(answer["messageid"])


@pytest.fixture
def console(settings, operator) -> Iterator[Console]:
    """A gateway with operator alice and partners acme (shortcode ACME) and rival (RIVAL), each
    with a portal password; no delivery runs, so messages stay Scheduled."""
    for partner_id, password in PARTNER_PASSWORDS.items():
        operator.partner(partner_id, shortcode=partner_id.upper())
        operator.portal_password(partner_id, password)
    operator.console_operator(OPERATOR, OPERATOR_PASSWORD)
    with LiveServer(settings) as server, httpx.Client(timeout=30) as client:
        yield Console(Gateway(server, operator, client))


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


@contextlib.contextmanager
def signed_in(base_url: str, area: str, name: str, password: str) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the console or the portal through its sign-in form."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = form_token(client.get(f"/{area}/login").text)
        field = "username" if area == "console" else "partner"
        answer = client.post(f"/{area}/login", data={"csrf": token, field: name, "password": password})
        assert answer.status_code == 303, answer.text
        yield client


@pytest.fixture
def delivering_console(settings, operator) -> Iterator[Console]:
    """As `console`, with delivery running in the gateway against the built-in simulated
    carrier (as `smsgw serve` does by default), so messages reach their final states."""
    for partner_id, password in PARTNER_PASSWORDS.items():
        operator.partner(partner_id, shortcode=partner_id.upper())
        operator.portal_password(partner_id, password)
    plan = DeliveryPlan.from_urls([], settings)
    with LiveServer(settings, delivery=lambda store: run_delivery(store, settings, plan)) as server, httpx.Client(timeout=30) as client:
        yield Console(Gateway(server, operator, client))


@pytest.fixture(scope="session")
def chromium():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver): missing {', '.join(missing)}"
        if os.environ.get("SMSGW_REQUIRE_BROWSER"):
            pytest.fail(f"a browser is required (SMSGW_REQUIRE_BROWSER): {reason}")
        pytest.skip(reason)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a browser
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium):
    """The session's browser with no cookies: cookies ignore ports, and every test has a
    server of its own on 127.0.0.1."""
    chromium.delete_all_cookies()
    yield chromium
    chromium.delete_all_cookies()


def screenshot(driver, name: str) -> None:
    """Saves the page as SMSGW_SCREENSHOTS/name.png when that is set."""
    directory = os.environ.get("SMSGW_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(directory) / f"{name}.png"))
