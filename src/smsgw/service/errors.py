"""Refusals of a partner's request as a whole, with the contract's code, and the reading of
numbers too large for a float; each transport turns these into its own answer."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import orjson

from ..domain.codes import Code


class BadRequest(Exception):
    def __init__(self, code: Code, detail: str | None = None, http_status: int = 200, retry_after: int | None = None) -> None:
        super().__init__(detail or code.name)
        self.code = code
        self.detail = detail
        self.http_status = http_status
        self.retry_after = retry_after  # seconds, for HTTP 429


class RateLimited(BadRequest):
    """Over the partner's messages-per-second limit: nothing was charged, try again later."""

    def __init__(self, code: Code, detail: str, retry_after: int) -> None:
        super().__init__(code, detail, http_status=429, retry_after=retry_after)


class InexactNumber(Exception):
    """A number of the body was read as a float that lost its digits (orjson reads integers
    past 64 bits so): the request is handled once more under `exact_numbers()`."""


_EXACT = contextvars.ContextVar("smsgw_exact_numbers", default=False)
LARGEST_EXACT = 2**63


@contextlib.contextmanager
def exact_numbers() -> Iterator[None]:
    token = _EXACT.set(True)
    try:
        yield
    finally:
        _EXACT.reset(token)


def reading_exact_numbers() -> bool:
    return _EXACT.get()


def is_inexact(value: Any) -> bool:
    """A number that a float could not hold: raises InexactNumber unless the body is being
    read with exact numbers (then such a number is an orjson.Fragment, never a float)."""
    if isinstance(value, float) and abs(value) >= LARGEST_EXACT:
        if not _EXACT.get():
            raise InexactNumber
        return True
    return isinstance(value, orjson.Fragment)
