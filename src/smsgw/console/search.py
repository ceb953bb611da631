"""The message search box of both areas: a message id, a mobile number, or both at once (an
all-digit query may be either)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..domain.networks import NetworkTable
from ..store import web as web_store
from ..store.store import Store

RESULT_LIMIT = 200
MAX_MESSAGE_ID_DIGITS = 18  # fits a signed 64-bit id


@dataclass(frozen=True)
class MessageQuery:
    text: str
    message_id: int | None
    msisdn: str | None  # international digits

    @classmethod
    def parse(cls, text: str, networks: NetworkTable) -> MessageQuery:
        text = text.strip()[:64]
        digits = text.isascii() and text.isdigit()
        message_id = int(text) if digits and len(text) <= MAX_MESSAGE_ID_DIGITS else None
        number = networks.normalise(text) if text else None
        return cls(text, message_id, number.digits if number is not None else None)

    @property
    def empty(self) -> bool:
        return not self.text

    @property
    def understood(self) -> bool:
        return self.message_id is not None or self.msisdn is not None

    async def run(self, store: Store, partner_id: str | None) -> list[Any]:
        """The newest messages without a query; the matches of one; nothing for a query that
        is neither an id nor a number."""
        if self.empty:
            if partner_id is None:
                return await store.read(web_store.recent_messages, RESULT_LIMIT)
            rows, _ = await store.read(web_store.partner_messages, partner_id, RESULT_LIMIT)
            return rows
        if not self.understood:
            return []
        return await store.read(web_store.find_messages, partner_id, self.message_id, self.msisdn, RESULT_LIMIT)
