"""Per-partner controls on the partner API: where a partner's requests may come from (IP
allow-lists), and how many messages per second it may send (rate limits, kept in the store so
that every API process shares them)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any

from ..config import IPNetwork
from ..domain.codes import Code
from ..domain.identifiers import IPAddress, parse_ip_address
from ..store.store import Partner
from .bodies import BadRequest

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

# The ASGI scope of the request being handled, so that authentication can find the client's
# address without every route passing it down.
_current_scope: ContextVar[dict[str, Any] | None] = ContextVar("smsgw_request_scope", default=None)


class RequestScope:
    """ASGI middleware that makes the request's scope known to `request_client`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        token = _current_scope.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _current_scope.reset(token)


def client_address(scope: dict[str, Any], trusted_proxies: Sequence[IPNetwork]) -> IPAddress | None:
    """The client's address: the socket peer, or, when the peer is a trusted proxy, the nearest
    address in X-Forwarded-For that is not one (proxies append, so the right end is the one
    written by our own proxy; what the client wrote itself is further left). None when an
    address cannot be read, which no allow-list matches."""
    peer = parse_ip_address((scope.get("client") or ("",))[0])
    if peer is None or not _within(peer, trusted_proxies):
        return peer
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
    hops = [hop.strip() for hop in ",".join(forwarded).split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_ip_address(hop)
        if address is None or not _within(address, trusted_proxies):
            return address
    return parse_ip_address(hops[0]) if hops else peer


def request_client(trusted_proxies: Sequence[IPNetwork]) -> IPAddress | None:
    """The client address of the request being handled (`client_address` of its scope)."""
    scope = _current_scope.get()
    return client_address(scope, trusted_proxies) if scope is not None else None


def ensure_allowed_address(partner: Partner, address: IPAddress | None) -> None:
    """BadRequest(1006), the wrong key's answer, when the partner has an allow-list and the
    request comes from outside it."""
    if partner.allowed_ips is None:
        return
    if address is None or not _within(address, parse_networks(partner.allowed_ips)):
        raise BadRequest(Code.INVALID_CREDENTIALS)


@functools.lru_cache(maxsize=1024)
def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """'10.0.0.0/8,192.0.2.7' -> networks; raises ValueError for anything else."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _within(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in networks)
