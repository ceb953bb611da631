"""Who is asking over HTTP: the partner API's credentials, checked and throttled per client
address. What the entries are worth and what gets stored is the transport-neutral
acceptance service (service/acceptance.py), which this extends.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..domain.apikeys import KeyHasher, is_scrypt_hash
from ..domain.codes import Code
from ..domain.identifiers import is_partner_id
from ..service import acceptance as service_acceptance
from ..service.acceptance import id_text
from ..store.errors import StoreUnavailable
from ..store.store import Partner, Store
from .bodies import BadRequest
from .controls import ensure_allowed_address, request_client
from .guard import FailureThrottle, ScryptChecks
from .responses import Responder

__all__ = ["Acceptance", "Credentials", "id_text", "idempotency_key", "read_credentials"]

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255


@dataclass(frozen=True)
class Credentials:
    partner_id: str
    api_key: str


def read_credentials(fields: dict[str, Any]) -> Credentials:
    try:
        partner_id = id_text(fields.get("partnerID"))
    except TypeError:
        raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "partnerID must be a string or a number") from None
    if partner_id is None:
        raise BadRequest(Code.NO_PARTNER_ID)
    try:
        api_key = id_text(fields.get("apikey"))
    except TypeError:
        raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "apikey must be a string") from None
    if api_key is None:
        raise BadRequest(Code.NO_API_KEY)
    pass_type = fields.get("pass_type")
    if pass_type is None or pass_type == "":
        pass_type = "plain"
    if not isinstance(pass_type, str) or pass_type.strip().lower() not in ("plain", "bm5"):
        raise BadRequest(Code.UNSUPPORTED_DATA_TYPE, "pass_type must be plain or bm5")
    if pass_type.strip().lower() == "bm5":
        try:
            api_key = base64.b64decode(api_key.encode("ascii"), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeError, ValueError):
            raise BadRequest(Code.INVALID_CREDENTIALS) from None
    if not is_partner_id(partner_id):
        raise BadRequest(Code.INVALID_CREDENTIALS)
    return Credentials(partner_id, api_key)


class Acceptance(service_acceptance.Acceptance):
    """The acceptance service with the HTTP API's authentication, its answers spelled by `responder`."""

    def __init__(self, settings: Settings, store: Store, routed_networks: frozenset[int] | None = None, responder: Responder | None = None) -> None:
        super().__init__(settings, store, routed_networks, render=(responder or Responder.of(settings)).entries)
        self._hasher: KeyHasher | None = None
        self._absent_hash = ""
        self.throttle = FailureThrottle()
        self.scrypt_checks = ScryptChecks()

    # -- who is asking -------------------------------------------------------------------------

    async def authenticate(self, fields: dict[str, Any]) -> Partner:
        """The partner whose credentials `fields` carry. Wrong keys are throttled per client
        address (behind SMSGW_TRUSTED_PROXIES, the one X-Forwarded-For names), which is also
        the address a partner's allow-list checks."""
        credentials = read_credentials(fields)
        client = request_client(self.settings.trusted_proxies)
        address = str(client) if client is not None else ""
        try:
            hasher = self._hasher or await self._load_hasher()
            partner = await self.store.get_partner(credentials.partner_id)
        except StoreUnavailable:
            raise BadRequest(Code.TRY_AGAIN_LATER) from None
        if partner is None:
            # The same work as a wrong key, so that the time of a 1006 does not tell which.
            hasher.verify(credentials.api_key, self._absent_hash)
            raise self.throttle.refuse(credentials.partner_id, address)
        stored = partner.api_key_hash
        if is_scrypt_hash(stored):
            key_ok = await self.scrypt_checks.verify(credentials.api_key, stored, address)
        else:
            key_ok = hasher.verify(credentials.api_key, stored)
        if not key_ok:
            raise self.throttle.refuse(credentials.partner_id, address)
        if not hasher.is_current(stored):
            await self._rehash(partner.id, credentials.api_key, stored, hasher)
        if not partner.active:
            raise BadRequest(Code.INVALID_CREDENTIALS)
        ensure_allowed_address(partner, client)
        return partner

    async def _load_hasher(self) -> KeyHasher:
        self._hasher = await self.store.api_key_hasher(self.settings.api_key_secret)
        self._absent_hash = self._hasher.hash(secrets.token_hex(16))
        return self._hasher

    async def _rehash(self, partner_id: str, api_key: str, old_hash: str, hasher: KeyHasher) -> None:
        """Replaces a hash of an earlier version or secret after a successful check with it."""
        try:
            await self.store.replace_api_key_hash(partner_id, old_hash, hasher.hash(api_key))
        except StoreUnavailable:
            log.warning("the API key hash of partner %s could not be upgraded now; the next successful check tries again", partner_id)


def idempotency_key(raw: str | None) -> str | None:
    """The Idempotency-Key header, or None; BadRequest(1010) when it is unusable."""
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable characters")
    return key
