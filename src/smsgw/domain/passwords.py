"""Passwords of people (console operators, partners in the portal), unlike API keys, are
guessable: they are stored as scrypt hashes, slow on purpose, in the `scrypt$N$R$P$SALT$DIGEST`
form that `apikeys.verify_scrypt` checks."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets

from .apikeys import SCRYPT_PREFIX, verify_scrypt

# 16 MiB and some tens of milliseconds per check: within hashlib's default memory limit.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 12
# Longer input costs scrypt nothing much, but a form field has to end somewhere.
MAX_PASSWORD_LENGTH = 1024


class WeakPassword(ValueError):
    pass


def check_password(password: str) -> None:
    """WeakPassword unless `password` is long enough to stand as one."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters, this one has {len(password)}")
    if len(set(password)) < 5:
        raise WeakPassword("a password must use at least 5 different characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise WeakPassword("a password must be text (it has an unpaired surrogate)") from None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join((SCRYPT_PREFIX, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; with no stored hash (no such account) a check of the same cost
    runs anyway, so that the time taken does not tell which names exist."""
    if stored is None:
        verify_scrypt(password, _unknown_account())
        return False
    return verify_scrypt(password, stored)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@functools.cache
def _unknown_account() -> str:
    return hash_password(secrets.token_hex(16))
