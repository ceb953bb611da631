"""What partner ids and shortcodes may look like. The operator CLI refuses others when they
are created, and the API answers them at once (1006, 1001) without a store lookup: such a
partner or sender id cannot exist."""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PARTNER_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_SHORTCODE_LENGTH = 32


def is_partner_id(text: str) -> bool:
    return _PARTNER_ID.match(text) is not None


def is_shortcode(text: str) -> bool:
    return 0 < len(text) <= MAX_SHORTCODE_LENGTH and text.isprintable()


def parse_ip_address(text: str) -> IPAddress | None:
    """An IP address written bare or in brackets ([::1]), or None. An IPv4 address mapped
    into IPv6 (::ffff:192.0.2.7, as an IPv6 socket shows an IPv4 peer) is that IPv4 address."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
