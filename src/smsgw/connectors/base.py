"""What a dispatcher may know of a connector: the message it hands over, the verdict it gets
back, the receipts and subscribers' messages that come the other way, and the `Connector`
protocol every kind of route (an SMPP bind, another provider's HTTP API) implements.

`dispatch/` imports this module and nothing else of `connectors/`, so a new kind of route
needs no change there; only the runtime wiring builds concrete connectors.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..domain.encoding import Encoding
from ..domain.states import DeliveryState


@dataclass(frozen=True)
class OutboundMessage:
    message_id: int  # gateway id: logs, and the concatenation reference (stable across retries)
    source: str
    destination: str
    text: str
    encoding: Encoding


class Verdict(enum.Enum):
    ACCEPTED = "accepted"  # the route took the message: its ids are in `smsc_message_ids`
    RETRY = "retry"  # not taken this time; the same message may well be taken later
    FAILED = "failed"  # refused for good by this route


@dataclass(frozen=True)
class SubmitOutcome:
    verdict: Verdict
    smsc_message_ids: tuple[str, ...]  # the route's ids, one per part sent, in order; empty unless accepted
    reason: str
    # The route's own answer code (an SMPP command_status, an upstream's response code);
    # None when it gave none (not bound, no answer, a transport error).
    code: int | None = None
    # Sent but never answered: the carrier may have it, so a resend may be a duplicate.
    unanswered: bool = False

    @classmethod
    def accepted(cls, smsc_message_ids: list[str] | tuple[str, ...], reason: str, code: int | None = None) -> SubmitOutcome:
        return cls(Verdict.ACCEPTED, tuple(smsc_message_ids), reason, code)

    @classmethod
    def retry(cls, reason: str, code: int | None = None, unanswered: bool = False) -> SubmitOutcome:
        return cls(Verdict.RETRY, (), reason, code, unanswered)

    @classmethod
    def failed(cls, reason: str, code: int | None = None) -> SubmitOutcome:
        return cls(Verdict.FAILED, (), reason, code)

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.ACCEPTED


@dataclass(frozen=True)
class Receipt:
    smsc_message_id: str  # the id the route gave in its answer to the submit
    state: DeliveryState
    stat: str  # standard seven letters when recognised, e.g. 'DELIVRD'; else as sent, upper case
    error: str | None
    done_at: float | None  # unix seconds, when the receipt's done date is readable
    source: str  # the handset
    destination: str
    raw_text: str


@dataclass(frozen=True)
class Concatenation:
    reference: int
    total: int
    number: int  # 1-based


@dataclass(frozen=True)
class MobileOriginated:
    """One part of a subscriber's message."""

    source: str
    destination: str
    text: str
    data_coding: int
    esm_class: int
    short_message: bytes  # as the carrier sent it, with its user data header if any
    user_data: bytes  # short_message without its user data header
    concatenation: Concatenation | None = None  # where this part sits in a long message


ReceiptSink = Callable[[Receipt], Awaitable[None]]  # returns once the receipt is stored; raises if it cannot be
# Returns once the message is stored, and optionally what to run once the deliver_sm_resp
# is on the wire (the store then knows the carrier will not resend it).
MobileOriginatedSink = Callable[[MobileOriginated], Awaitable[Callable[[], None] | None]]


class Connector(Protocol):
    """A route's link to a carrier or another provider. `submit` never raises for what the
    far side does: every answer, silence or lost connection is a verdict."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def submit(self, message: OutboundMessage) -> SubmitOutcome: ...
    @property
    def bound(self) -> bool:
        """Ready to take messages now (an SMPP bind is up)."""
        ...


# --- message id matching --------------------------------------------------------------------

_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"(?:0x)?([0-9a-f]+)")
# message_id holds at most 64 characters; a longer "id" is garbage and gets its exact key only
# (it also keeps int() far from Python's limit on digits).
_MAX_NUMERIC_ID = 64


def smsc_id_keys(raw: str) -> list[str]:
    """Canonical keys of a carrier's message id; two ids denote the same message when their
    key lists intersect.

    The rule, applied identically to the id of the submit's answer and to the receipt's id:

    - the id is stripped of surrounding blanks and NULs and lower-cased; `s:<that>` is
      always the first key (an exact match, the strongest evidence);
    - if it is all decimal digits, `n:<its value read as decimal>` follows;
    - if it is all hex digits (optionally after `0x`), `n:<its value read as hex>` follows
      (unless equal to the decimal one).

    So '0A1B' (hex) and '2587' (decimal) share `n:2587`; '000123' and '123' share `n:123`;
    'ABC' and 'abc' share `s:abc`. An id made only of decimal digits is ambiguous (it has
    both readings), so rare false matches are possible between the decimal reading of one id
    and the hex reading of another; when several stored messages match, prefer the one that
    shares the earliest key of the receipt's list (exact, then decimal, then hex).
    """
    normal = raw.strip().strip("\0").strip().lower()
    if not normal:
        return []
    keys = ["s:" + normal]
    if len(normal) > _MAX_NUMERIC_ID:
        return keys
    if _DECIMAL.fullmatch(normal):
        keys.append(f"n:{int(normal)}")
    hex_match = _HEX.fullmatch(normal)
    if hex_match:
        key = f"n:{int(hex_match.group(1), 16)}"
        if key not in keys:
            keys.append(key)
    return keys
