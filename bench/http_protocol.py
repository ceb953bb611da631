"""CPU per request of the HTTP protocol alone: uvicorn's httptools protocol against smsgw's
LimitedHttpProtocol (api/http.py), in one process, alternating.

Each protocol is fed small keep-alive requests (a 2-byte POST body, arriving whole) on an
in-memory transport and answers them from a minimal ASGI app, so what is measured is the
parser, the request cycle and the limits' timers and counters, not the gateway's work.

    python bench/http_protocol.py [--requests 20000] [--rounds 7]

Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from smsgw.api.http import HttpLimits, LimitedHttpProtocol

REQUEST = b"POST /api/services/sendbulk HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
LIMITS = HttpLimits(
    head_timeout=10, body_timeout=20, body_min_rate=1024, max_head_bytes=32768, max_header_line_bytes=8192, keep_alive=15, max_connections=1000
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class MemoryTransport(asyncio.Transport):
    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def microseconds_per_request(limited: bool, requests: int) -> float:
    config = Config(app, log_level="warning")
    config.load()
    state = ServerState()
    if limited:
        protocol: HttpToolsProtocol = LimitedHttpProtocol(config=config, server_state=state, app_state={}, limits=LIMITS)
    else:
        protocol = HttpToolsProtocol(config=config, server_state=state, app_state={})
    protocol.connection_made(MemoryTransport())
    began = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        await asyncio.sleep(0)  # the request's task starts
        await asyncio.sleep(0)  # and answers
    return (time.process_time() - began) / requests * 1e6


async def main(requests: int, rounds: int) -> None:
    stock: list[float] = []
    limited: list[float] = []
    for _ in range(rounds):
        stock.append(await microseconds_per_request(False, requests))
        limited.append(await microseconds_per_request(True, requests))
    print(f"uvicorn httptools protocol: {' '.join(f'{v:.1f}' for v in stock)} us/request, median {statistics.median(stock):.1f}")
    print(f"LimitedHttpProtocol:        {' '.join(f'{v:.1f}' for v in limited)} us/request, median {statistics.median(limited):.1f}")
    print(f"difference of medians: {statistics.median(limited) - statistics.median(stock):+.1f} us/request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
