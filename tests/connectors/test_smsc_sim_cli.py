"""`smsgw smsc-sim` as an operator runs it: a separate process, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import Callable

from smsgw.connectors.smpp.client import OutboundMessage, SmppConnector
from smsgw.domain.encoding import Encoding

from ..helpers import wait_for
from .conftest import ReceiptBox, ordinary_number


async def test_smsc_sim_command_serves_until_sigterm(connector_factory: Callable[..., SmppConnector]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from smsgw.cli.main import main; main()",
        "smsc-sim",
        "--port",
        "0",
        "--system-id",
        "cli",
        "--password",
        "pw",
        "--id-format",
        "decimal",
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()  # type: ignore[union-attr]
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", banner)
        assert found, banner
        box = ReceiptBox()
        connector = connector_factory(int(found.group(1)), system_id="cli", password="pw", on_receipt=box)
        await connector.start()
        assert await connector.wait_bound(5), connector.last_error
        outcome = await asyncio.wait_for(connector.submit(OutboundMessage(1, "12345", ordinary_number(1), "hello", Encoding.GSM7)), 5)
        assert outcome.ok and outcome.smsc_message_ids[0].isdigit()
        # Without --test-numbers the reserved suffixes are ordinary numbers: no fault by accident.
        reserved = [f"25470010000{i}" for i in range(1, 10)]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(connector.submit(OutboundMessage(2 + i, "12345", n, "hello", Encoding.GSM7)) for i, n in enumerate(reserved))), 10
        )
        assert [o.ok for o in outcomes] == [True] * 9
        await wait_for(lambda: len(box.receipts) == 10, 10, "every receipt")
        assert {r.stat for r in box.receipts} == {"DELIVRD"}
        await connector.stop()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        rest, errors = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, errors.decode()
    assert "stopped: 10 submit_sm, 10 receipts acknowledged, 1 binds" in rest.decode()
