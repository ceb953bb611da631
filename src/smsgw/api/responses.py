"""Rendering answers: the contract's key spelling and the optional legacy misspelling."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from .. import metrics
from ..domain.codes import Code, describe


class JSONBytes(Response):
    media_type = "application/json"


def answer(payload: dict[str, Any], legacy: bool, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    if legacy and "response-code" in payload:
        payload["respose-code"] = payload["response-code"]
    return JSONBytes(orjson.dumps(payload), status_code=status_code, headers=headers)


def bare(code: Code, detail: str | None, legacy: bool, status_code: int = 200, retry_after: int | None = None) -> Response:
    """A request-level outcome: `{"response-code": ..., "response-description": ...}`."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    metrics.request_refused(int(code))
    return answer({"response-code": int(code), "response-description": describe(code, detail)}, legacy, status_code, headers)
