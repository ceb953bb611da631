"""submit_sm per second of our SmppConnector against our SMSC simulator, in one process.

Both ends share one event loop (and one core), so the figure is a floor for the connector:
every submit_sm is encoded, decoded, answered, its response decoded, and its DELIVRD receipt
encoded, decoded, parsed, handed to on_receipt and acknowledged, all in this process.

    python bench/smpp_loop.py [--messages 30000] [--window 64] [--submitters 256] [--uvloop]

Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from smsgw.connectors.smpp.client import OutboundMessage, Receipt, SmppConnector  # noqa: E402
from smsgw.connectors.smpp.simulator import SmscSimulator  # noqa: E402
from smsgw.domain.encoding import Encoding  # noqa: E402


async def run(messages: int, window: int, submitters: int) -> None:
    simulator = SmscSimulator(system_id="bench", password="bench")
    port = await simulator.start("127.0.0.1", 0)
    receipts = 0

    async def on_receipt(_receipt: Receipt) -> None:
        nonlocal receipts
        receipts += 1

    connector = SmppConnector("bench", "127.0.0.1", port, "bench", "bench", window=window, on_receipt=on_receipt)
    await connector.start()
    if not await connector.wait_bound(5):
        raise SystemExit(f"cannot bind: {connector.last_error}")
    queue = iter(range(messages))
    failures = 0

    async def submitter() -> None:
        nonlocal failures
        for index in queue:
            outcome = await connector.submit(OutboundMessage(index, "SMSGW", f"2547{index:08d}", f"Benchmark message {index}", Encoding.GSM7))
            failures += not outcome.ok

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(submitters)))
    submitted = time.perf_counter() - started
    while receipts < messages - failures and time.perf_counter() - started < submitted * 3 + 10:
        await asyncio.sleep(0.01)
    settled = time.perf_counter() - started
    print(f"{messages} messages, window {window}, {submitters} concurrent submitters, loop {type(asyncio.get_running_loop()).__module__}")
    print(f"submit_sm/s: {messages / submitted:,.0f}  ({submitted:.2f} s; failures {failures})")
    print(
        f"receipts: {receipts} in {settled:.2f} s; peak window in use {connector.window_peak}; SMSC saw at most {simulator.max_outstanding} unanswered"
    )
    await connector.stop()
    await simulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--submitters", type=int, default=256)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of the default asyncio loop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(run(args.messages, args.window, args.submitters))
    else:
        asyncio.run(run(args.messages, args.window, args.submitters))


if __name__ == "__main__":
    main()
