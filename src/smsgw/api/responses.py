"""Rendering answers: the contract's key spelling, the optional legacy misspelling, and the
time formats of delivery reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from starlette.responses import Response

from ..domain.codes import Code, describe


class JSONBytes(Response):
    media_type = "application/json"


def answer(payload: dict[str, Any], legacy: bool, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    if legacy and "response-code" in payload:
        payload["respose-code"] = payload["response-code"]
    return JSONBytes(orjson.dumps(payload), status_code=status_code, headers=headers)


def bare(code: Code, detail: str | None, legacy: bool, status_code: int = 200) -> Response:
    """A request-level outcome: `{"response-code": ..., "response-description": ...}`."""
    return answer({"response-code": int(code), "response-description": describe(code, detail)}, legacy, status_code)


def local_time(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: int) -> str:
    """Turnaround as HH:MM:SS; hours go past 24 rather than wrapping."""
    seconds = max(0, ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"
