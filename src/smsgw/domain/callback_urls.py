"""What a partner's callback URL may look like. The operator CLI refuses others when they are
set, and the callback sender checks again before each POST: a URL stored before these rules
(or edited in the database) must fail its own callback with a reason, never the sender.

The URL must also lead to a public address (contract: callback and inbound URLs), checked
when it is set and again on every send against what the name resolves to then, unless the
operator allowed private destinations for the partner (tests, intranets). A name that
resolves differently between our check and the HTTP client's own lookup is not covered."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import idna

from .identifiers import IPAddress, parse_ip_address

MAX_CALLBACK_URL_LENGTH = 2000
# Letters, digits, hyphens and underscores (which DNS allows and intranet names use).
_ASCII_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_IPV4_STYLE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")


class BadCallbackUrl(ValueError):
    pass


def check_callback_url(url: str) -> None:
    """Raises BadCallbackUrl saying what is wrong unless `url` is an http(s) URL with a host
    (an IP address, or a name that IDNA can encode), a port in 1-65535, and no whitespace or
    control character anywhere."""
    if not url:
        raise BadCallbackUrl("the callback URL is empty")
    if len(url) > MAX_CALLBACK_URL_LENGTH:
        raise BadCallbackUrl(f"the callback URL is longer than {MAX_CALLBACK_URL_LENGTH} characters")
    for position, char in enumerate(url):
        if char.isspace() or not char.isprintable():
            raise BadCallbackUrl(f"the callback URL has a whitespace or control character (U+{ord(char):04X}) at position {position}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadCallbackUrl(f"the callback URL cannot be parsed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadCallbackUrl("the callback URL must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise BadCallbackUrl("the callback URL has no host")
    if port is not None and not 1 <= port <= 65535:
        raise BadCallbackUrl(f"the callback URL's port {port} is not in 1-65535")
    _check_host(host, bracketed=parts.netloc.rpartition("@")[2].startswith("["))


def _check_host(host: str, bracketed: bool) -> None:
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadCallbackUrl(f"the callback URL's host [{host}] is not an IPv6 address") from None
        return
    if _IPV4_STYLE.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise BadCallbackUrl(f"the callback URL's host {host} is not an IPv4 address") from None
        return
    name = host.removesuffix(".")
    if len(name) > 253:
        raise BadCallbackUrl("the callback URL's host name is longer than 253 characters")
    if not name.isascii():
        try:
            idna.encode(name, uts46=True)
        except (idna.IDNAError, UnicodeError) as exc:
            raise BadCallbackUrl(f"the callback URL's host {host!r} is not a valid international domain name: {exc}") from None
        return
    for label in name.split("."):
        if not _ASCII_LABEL.match(label):
            raise BadCallbackUrl(f"the callback URL's host {host!r} is not a valid host name")
        if label[:4].lower() == "xn--":
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise BadCallbackUrl(f"the callback URL's host {host!r} has an invalid IDNA label {label!r}: {exc}") from None


class PrivateDestination(BadCallbackUrl):
    """The URL's host is, or resolves to, an address that is not public."""


class UnresolvedHost(BadCallbackUrl):
    """The URL's host name does not resolve (now)."""


def is_public_address(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local (cloud metadata at
    169.254.169.254 among them), shared (100.64/10), reserved, multicast or unspecified; an
    IPv4 address mapped into IPv6 is judged as the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def refuse_private(host: str, addresses: list[str]) -> None:
    """PrivateDestination unless every address `host` resolved to is public (a name that
    resolves to one private address among public ones is refused: the connection may go there)."""
    for text in addresses:
        address = parse_ip_address(text.split("%", 1)[0])
        if address is None or not is_public_address(address):
            shown = host if text == host else f"{host} ({text})"
            raise PrivateDestination(
                f"the URL's host {shown} is not a public address (loopback, private, link-local or metadata addresses need --allow-private)"
            )


def host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme.lower() == "https" else 80)
