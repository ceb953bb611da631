"""Reading request bodies: a size limit, then JSON, form or query parameters.

Nothing here raises anything but `BadRequest`, which the routes turn into the contract's
bare error object.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.requests import ClientDisconnect, Request

from ..domain.codes import Code
from ..service.errors import LARGEST_EXACT, BadRequest, InexactNumber, exact_numbers, reading_exact_numbers

__all__ = ["BadRequest", "InexactNumber", "exact_numbers", "form_fields", "parameters", "parse_json", "read_body"]

JSON_CONTENT_TYPES = ("application/json", "text/json", "application/javascript", "text/plain")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BadRequest(1010, HTTP 413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, f"body larger than {limit} bytes", http_status=413)
        except ValueError:
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, f"body larger than {limit} bytes", http_status=413)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "client went away before the body arrived") from None
    body = b"".join(chunks)
    # Later readers (the form parser) read the body from here instead of the finished stream.
    request._body = body
    return body


def _exact_int(text: str) -> Any:
    value = int(text)
    return value if -LARGEST_EXACT <= value < LARGEST_EXACT else orjson.Fragment(text)


def _exact_float(text: str) -> Any:
    value = float(text)
    return value if abs(value) < LARGEST_EXACT else orjson.Fragment(text)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """The JSON document of `body`; 1010 if it is not JSON (comments, NaN, lone surrogates,
    bad UTF-8 included). Integers past 64 bits come back as floats (orjson's reading), so
    acceptance raises InexactNumber on one it must echo; under `exact_numbers()` every
    number that a float cannot hold comes back as an orjson.Fragment of its own digits,
    which answers echo unchanged."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "body is not valid JSON") from None
    if reading_exact_numbers():
        # orjson has accepted the body, so this second reading meets valid JSON only.
        return json.loads(body, parse_int=_exact_int, parse_float=_exact_float, parse_constant=_no_constants)
    return doc


def form_fields(encoded: bytes, what: str) -> dict[str, str]:
    """The fields of a query string or urlencoded form; 1010 for bytes that are not UTF-8
    (raw or %-escaped) and for a field given twice, which would otherwise leave it to chance
    which of the two values is sent."""
    fields: dict[str, str] = {}
    for pair in encoded.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        try:
            name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8")
            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, f"{what} is not UTF-8") from None
        if name in fields:
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, f"field {name[:64]!r} given twice in the {what}")
        fields[name] = value
    return fields


async def parameters(request: Request, limit: int) -> dict[str, Any]:
    """The fields of a request that may come as JSON, a form or a query string
    (sendsms, sendotp, getbalance, getdlr). Body fields win over query fields."""
    fields: dict[str, Any] = form_fields(request.scope.get("query_string", b""), "query string")
    if request.method == "GET":
        return fields
    body = await read_body(request, limit)
    if not body.strip():
        return fields
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        fields.update(form_fields(body, "form body"))
        return fields
    if content_type == "multipart/form-data":
        try:
            form = await request.form()
        except Exception:  # the multipart parser raises several types for a broken body
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "multipart body cannot be read") from None
        seen: set[str] = set()
        for name, _ in form.multi_items():
            if name in seen:
                raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, f"field {name[:64]!r} given twice in the multipart body")
            seen.add(name)
        fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        return fields
    if content_type and content_type not in JSON_CONTENT_TYPES:
        raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, f"content type {content_type} is not JSON or a form")
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "body must be a JSON object")
    fields.update(doc)
    return fields


def mobile_numbers(mobile: Any, limit: int) -> list[Any]:
    """The numbers of a `mobile` field: one, several separated by commas, or a JSON list;
    [None] when there is none (its entry is answered 1003). More than `limit`: 1104."""
    if isinstance(mobile, str):
        # Count before splitting: a body of commas must not become a million-item list.
        if mobile.count(",") >= limit:
            raise BadRequest(Code.TOO_MANY_CONTACTS, f"{mobile.count(',') + 1} numbers, the limit is {limit}")
        numbers: list[Any] = [n.strip() for n in mobile.split(",") if n.strip()] or [None]
    elif isinstance(mobile, list):
        numbers = mobile or [None]
    else:
        numbers = [mobile]
    if len(numbers) > limit:
        raise BadRequest(Code.TOO_MANY_CONTACTS, f"{len(numbers)} numbers, the limit is {limit}")
    return numbers
