"""`smsgw smsc-sim --inbound-file`: lines appended to the file reach a bound ESME as
subscribers' deliver_sm."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import pytest

from smsgw.connectors.smpp.client import MobileOriginated
from smsgw.connectors.smpp.inbound_feed import parse_line

from ..helpers import wait_for


@pytest.mark.parametrize(
    "line, expected",
    [
        ("254712000001 SC1 Hello there", ("254712000001", "SC1", "Hello there")),
        ("  254712000001\t22000  news  today ", ("254712000001", "22000", "news  today")),
        ("# a comment", None),
        ("   ", None),
    ],
    ids=["plain", "spaces-kept-in-text", "comment", "blank"],
)
def test_parse_line(line, expected):
    assert parse_line(line) == expected


def test_parse_line_refuses_a_line_without_text():
    with pytest.raises(ValueError, match="FROM TO TEXT"):
        parse_line("254712000001 SC1")


async def test_lines_of_the_inbound_file_are_sent_to_the_bound_gateway(tmp_path, connector_factory) -> None:
    feed = tmp_path / "inbound.txt"
    feed.write_text("# subscribers\n254712000001 SC1 Hello there\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from smsgw.cli.main import main; main()", "smsc-sim", "--port", "0", "--inbound-file", str(feed), "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    received: list[MobileOriginated] = []

    async def collect(message: MobileOriginated) -> None:
        received.append(message)

    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()  # type: ignore[union-attr]
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
        connector = connector_factory(port, on_mobile_originated=collect)
        await connector.start()
        assert await connector.wait_bound(5), connector.last_error
        await wait_for(lambda: len(received) == 1, 10, "the first line")
        with feed.open("a", encoding="utf-8") as handle:
            handle.write("254712000002 22000 Habari 😀\n")
        await wait_for(lambda: len(received) == 2, 10, "the appended line")
        await connector.stop()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 10)
    assert [(m.source, m.destination, m.text, m.data_coding, m.esm_class) for m in received] == [
        ("254712000001", "SC1", "Hello there", 0, 0),
        ("254712000002", "22000", "Habari 😀", 8, 0),
    ]


def test_the_embedded_default_shows_the_two_way_path(tmp_path):
    import time

    import httpx

    from ..helpers import DEFAULT_KEY, Operator, free_port, make_settings, start_serve

    database_url = f"sqlite:///{tmp_path / 'smsgw.db'}"
    Operator(make_settings(database_url)).partner("p1", shortcode="SC1")
    feed = tmp_path / "inbound.txt"
    feed.write_text("254712000001 SC1 Hello from a subscriber\n")
    port = free_port()
    process = start_serve({"SMSGW_DATABASE_URL": database_url, "SMSGW_SIMULATOR_INBOUND_FILE": str(feed)}, port, tmp_path)
    try:
        deadline = time.monotonic() + 20
        messages: list = []
        while not messages and time.monotonic() < deadline:
            answer = httpx.post(f"http://127.0.0.1:{port}/api/services/getinbox", json={"partnerID": "p1", "apikey": DEFAULT_KEY}, timeout=10).json()
            messages = answer["messages"]
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert [(m["mobile"], m["shortcode"], m["message"]) for m in messages] == [("254712000001", "SC1", "Hello from a subscriber")]
