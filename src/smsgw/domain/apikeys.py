"""API keys: high-entropy secrets, stored as HMAC-SHA256 under a server-side secret.

An API key is not a password: a generated key carries 128 random bits and an operator-supplied
one must be long and varied (`check_operator_key`), so a slow hash buys nothing against
guessing and costs every request. What protects a stolen table is the server-side secret: a
stored value `hmac-sha256$ID$DIGEST` cannot be checked against any key without it. ID names
the secret (a fingerprint, not the secret), so that hashes made under an earlier secret still
verify and are replaced on their next successful check (docs/architecture.md, "Credential
checks").

Hashes of earlier versions (`scrypt$N$R$P$SALT$DIGEST`) still verify, slowly, with
`verify_scrypt`; the API replaces each with the current form on its first successful check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

HMAC_PREFIX = "hmac-sha256"
SCRYPT_PREFIX = "scrypt"
MIN_OPERATOR_KEY_LENGTH = 24
MAX_OPERATOR_KEY_LENGTH = 128
# Fewer distinct characters than this means a pattern ("aaaa…", "abab…"), not a secret.
MIN_DISTINCT_CHARACTERS = 8
# RFC 3986 unreserved characters: a key of these travels unescaped in JSON, forms and queries.
_OPERATOR_KEY = re.compile(r"[A-Za-z0-9._~-]+")
# SMSGW_API_KEY_SECRET: at least this many characters (the generated one has 64 hex digits).
MIN_SECRET_LENGTH = 32


class WeakApiKey(ValueError):
    pass


def generate_api_key() -> str:
    """32 hex characters (128 random bits): safe in JSON, form and query bodies alike."""
    return secrets.token_hex(16)


def check_operator_key(key: str) -> None:
    """WeakApiKey unless `key` is fit to be a partner's API key."""
    if not MIN_OPERATOR_KEY_LENGTH <= len(key) <= MAX_OPERATOR_KEY_LENGTH:
        raise WeakApiKey(f"an API key must have {MIN_OPERATOR_KEY_LENGTH} to {MAX_OPERATOR_KEY_LENGTH} characters, this one has {len(key)}")
    if not _OPERATOR_KEY.fullmatch(key):
        raise WeakApiKey("an API key may contain only letters A-Z a-z, digits and - . _ ~")
    if len(set(key)) < MIN_DISTINCT_CHARACTERS:
        raise WeakApiKey(f"an API key must use at least {MIN_DISTINCT_CHARACTERS} different characters (leave --api-key out for a generated one)")


class KeyHasher:
    """Hashes keys under the current server-side secret; verifies under it and earlier ones."""

    def __init__(self, current: str, *earlier: str) -> None:
        self._current_id = _secret_id(current)
        self._secrets = {_secret_id(s): s.encode("utf-8") for s in (*earlier, current)}

    def hash(self, key: str) -> str:
        return "$".join((HMAC_PREFIX, self._current_id, _b64(self._digest(self._secrets[self._current_id], key))))

    def verify(self, key: str, stored: str) -> bool:
        """Constant-time check of `key` against an `hmac-sha256` hash; False for any other
        form, or a hash made under a secret this process does not know."""
        parts = stored.split("$")
        if len(parts) != 3 or parts[0] != HMAC_PREFIX:
            return False
        secret = self._secrets.get(parts[1])
        if secret is None:
            return False
        try:
            expected = _unb64(parts[2])
        except ValueError:
            return False
        return hmac.compare_digest(self._digest(secret, key), expected)

    def is_current(self, stored: str) -> bool:
        return stored.startswith(f"{HMAC_PREFIX}${self._current_id}$")

    @staticmethod
    def _digest(secret: bytes, key: str) -> bytes:
        return hmac.new(secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def is_scrypt_hash(stored: str) -> bool:
    return stored.startswith(SCRYPT_PREFIX + "$")


def verify_scrypt(key: str, stored: str) -> bool:
    """Constant-time check of `key` against a hash of an earlier version (tens of ms)."""
    try:
        prefix, n, r, p, salt, digest = stored.split("$")
        if prefix != SCRYPT_PREFIX:
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(key.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(actual, expected)


def _secret_id(secret: str) -> str:
    return hashlib.sha256(b"smsgw api key secret id\x00" + secret.encode("utf-8")).hexdigest()[:12]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
