"""Rendering answers: the partner API's answers through one `Responder`, which alone knows
whether each code is also written under the providers' legacy misspelling, and the plain
status answers of the operations routes (no contract code, so nothing to spell)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from .. import metrics
from ..config import Settings
from ..domain.codes import Code, describe


class JSONBytes(Response):
    media_type = "application/json"


def status_answer(payload: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An operations answer (health, readiness, pushed reports): `{"status": ...}` as it is."""
    return JSONBytes(orjson.dumps(payload), status_code=status_code, headers=headers)


@dataclass(frozen=True)
class Responder:
    """The partner and admin API's answers. With `legacy` (SMSGW_LEGACY_RESPOSE_CODE) every
    `response-code` is repeated as `respose-code`, the spelling some providers' clients read.
    Built once from the settings; frozen and small, so that it travels to worker processes
    with the HTTP protocol's limits."""

    legacy: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Responder:
        return cls(legacy=settings.legacy_respose_code)

    def spelled(self, payload: dict[str, Any]) -> dict[str, Any]:
        """`payload`, with the legacy key added (last) when it carries a code and legacy is on."""
        if self.legacy and "response-code" in payload:
            payload["respose-code"] = payload["response-code"]
        return payload

    def render(self, payload: dict[str, Any]) -> bytes:
        return orjson.dumps(self.spelled(payload))

    def entries(self, responses: list[dict[str, Any]]) -> bytes:
        """The send calls' answer, `{"responses": [...]}`, each entry spelled."""
        for entry in responses:
            self.spelled(entry)
        return orjson.dumps({"responses": responses})

    def answer(self, payload: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
        return JSONBytes(self.render(payload), status_code=status_code, headers=headers)

    def bare(self, code: Code, detail: str | None, status_code: int = 200, retry_after: int | None = None) -> Response:
        """A request-level outcome: `{"response-code": ..., "response-description": ...}`."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        metrics.request_refused(int(code))
        return self.answer({"response-code": int(code), "response-description": describe(code, detail)}, status_code, headers)
