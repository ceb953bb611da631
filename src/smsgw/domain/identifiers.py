"""What partner ids and shortcodes may look like. The operator CLI refuses others when they
are created, and the API answers them at once (1006, 1001) without a store lookup: such a
partner or sender id cannot exist."""

from __future__ import annotations

import re

_PARTNER_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_SHORTCODE_LENGTH = 32


def is_partner_id(text: str) -> bool:
    return _PARTNER_ID.match(text) is not None


def is_shortcode(text: str) -> bool:
    return 0 < len(text) <= MAX_SHORTCODE_LENGTH and text.isprintable()
