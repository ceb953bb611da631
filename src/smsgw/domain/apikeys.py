"""API keys: generated with a CSPRNG, stored only as a salted scrypt hash.

scrypt costs tens of milliseconds on purpose (an operator may choose a weak key with
`--api-key`); the API keeps a short memory of keys it has already verified (api/acceptance.py) so
that the cost is paid once per key, not once per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
_PREFIX = "scrypt"


def generate_api_key() -> str:
    """32 hex characters: safe in JSON, form and query bodies alike."""
    return secrets.token_hex(16)


def hash_api_key(key: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join((_PREFIX, str(_N), str(_R), str(_P), _b64(salt), _b64(digest)))


def verify_api_key(key: str, stored: str) -> bool:
    """Constant-time check of `key` against a hash made by `hash_api_key`."""
    try:
        prefix, n, r, p, salt, digest = stored.split("$")
        if prefix != _PREFIX:
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(key.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(actual, expected)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
