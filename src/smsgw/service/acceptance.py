"""Acceptance: what each entry of a partner's request is worth, and what gets stored.

Transport-neutral: the HTTP API (sendbulk, sendsms, sendotp, auto-replies) and the partner
SMPP server both hand a list of entries to `Acceptance.submit` and get one answer per entry
back, in input order. Every entry is checked on its own (a bad entry gets its own code, never
a failure of the batch); then the whole batch is charged and stored in one transaction, or, if
the balance cannot pay for all of it, nothing is. Who is asking (credentials, addresses) is
the transport's job.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .. import metrics
from ..config import Settings
from ..domain.codes import Code, describe
from ..domain.compliance import promotional_due, with_footer
from ..domain.encoding import count_parts
from ..domain.identifiers import is_shortcode
from ..domain.money import format_units
from ..domain.schedule import BadSchedule, parse_time_to_send
from ..domain.states import PRIORITY_OTP, DeliveryState
from ..store import accounts, optout
from ..store.acceptance import LowCredit, PartnerInactive
from ..store.errors import IdempotencyConflict, OutcomeUnknown, StoreUnavailable
from ..store.store import Partner, Shortcode, Store
from .errors import BadRequest, InexactNumber, RateLimited, is_inexact

log = logging.getLogger(__name__)

MAX_CLIENTSMSID_LENGTH = 100


def id_text(value: Any) -> str | None:
    """A partner id, shortcode or similar given as a JSON string or number; None if absent,
    raises TypeError for any other JSON type."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise TypeError


# Writes one answer per entry as the bytes a transport hands on (and stores for a replay).
AnswerRenderer = Callable[[list[dict[str, Any]]], bytes]


def plain_answer(responses: list[dict[str, Any]]) -> bytes:
    """`{"responses": [...]}` as the entries are; the HTTP API passes its own renderer, which
    decides the spelling of the codes."""
    return orjson.dumps({"responses": responses})


class Acceptance:
    def __init__(
        self, settings: Settings, store: Store, routed_networks: frozenset[int] | None = None, *, render: AnswerRenderer = plain_answer
    ) -> None:
        self.settings = settings
        self.store = store
        self.render = render
        self.networks = settings.networks
        # None: every network of the table has a route (the embedded simulated carrier).
        self.routed_networks = routed_networks
        # Called after each stored batch, so that an in-process dispatcher starts at once.
        self.on_accepted: Callable[[], None] | None = None

    # -- sending -------------------------------------------------------------------------------

    async def _find_shortcode(self, value: Any) -> tuple[str, Shortcode | None]:
        """The shortcode a request names, and its record (None: no such shortcode); 1001 when
        it names none or no valid one."""
        try:
            text = id_text(value)
        except TypeError:
            text = None
        if text is None:
            raise BadRequest(Code.INVALID_SENDER_ID, "shortcode missing")
        if not is_shortcode(text):
            raise BadRequest(Code.INVALID_SENDER_ID)
        try:
            return text, await self.store.get_shortcode(text)
        except StoreUnavailable:
            raise BadRequest(Code.TRY_AGAIN_LATER) from None

    async def own_shortcode(self, partner: Partner, value: Any) -> Shortcode:
        """The partner's own shortcode that `value` names; 1001 for any other."""
        _, shortcode = await self._find_shortcode(value)
        if shortcode is None or shortcode.partner_id != partner.id:
            raise BadRequest(Code.INVALID_SENDER_ID)
        return shortcode

    async def submit(
        self,
        partner: Partner,
        shortcode_value: Any,
        entries: list[Any],
        *,
        priority: int,
        mobile_as_number: bool,
        idempotency: tuple[str, str] | None,
        kind: str,
        shared_sender: Shortcode | None = None,
        smpp_account: str | None = None,
    ) -> bytes:
        """The JSON answer (`{"responses": [...]}`) for `entries`, all charged and stored
        before this returns. `idempotency` is (key, SHA-256 of the body): a repeated request
        gets the first answer back and is not charged again. `shared_sender`: a shared
        shortcode the partner may send from (auto-replies to its keyword's messages).
        `smpp_account`: the SMPP account the entries came through, owed their receipts."""
        if idempotency is not None:
            replayed = await self.stored_answer(partner, *idempotency)
            if replayed is not None:
                return replayed
        shortcode_text, shortcode = await self._find_shortcode(shortcode_value)
        if shared_sender is not None and shared_sender.shortcode == shortcode_text and shared_sender.partner_id == partner.id:
            shortcode = shortcode or shared_sender
        elif shortcode is None or shortcode.partner_id != partner.id:
            raise BadRequest(Code.INVALID_SENDER_ID)

        # One id per entry, reserved before checking them: a refused entry wastes its id, which
        # costs nothing, and every accepted row and answer is built once, complete.
        try:
            ids = await self.store.next_message_ids(len(entries))
        except StoreUnavailable:
            raise BadRequest(Code.TRY_AGAIN_LATER) from None
        now = time.time()
        now_ms = int(now * 1000)
        responses: list[dict[str, Any]] = []
        rows: list[tuple] = []  # NewMessage field order
        batch_id = ids[0]
        candidates: list[tuple[int, Any, Any]] = []  # (position, mobile as sent, clientsmsid)
        total_cost = 0
        partner_id = partner.id
        shortcode_text = shortcode.shortcode
        scheduled_state = int(DeliveryState.SCHEDULED)
        validity_ms = self.settings.validity_seconds * 1000
        table = self.networks
        routed = self.routed_networks
        enabled = shortcode.networks
        max_parts = self.settings.max_parts
        zone = self.settings.timezone
        # One-time passwords are never held for the window nor given the footer.
        promotional = shortcode.promotional and priority != PRIORITY_OTP

        for message_id, entry in zip(ids, entries):
            if not isinstance(entry, dict):
                responses.append(_failed(Code.UNSUPPORTED_DATA_TYPE, "each entry must be a JSON object", None, _ABSENT))
                continue
            mobile_raw = entry.get("mobile")
            clientsmsid = entry.get("clientsmsid", _ABSENT)
            try:
                # -- number
                if isinstance(mobile_raw, str):
                    mobile_text = mobile_raw
                elif isinstance(mobile_raw, int) and not isinstance(mobile_raw, bool):
                    mobile_text = str(mobile_raw)
                elif mobile_raw is None:
                    responses.append(_failed(Code.INVALID_MOBILE, "mobile missing", mobile_raw, clientsmsid))
                    continue
                else:
                    responses.append(_failed(Code.UNSUPPORTED_DATA_TYPE, "mobile must be a string or a number", mobile_raw, clientsmsid))
                    continue
                # -- message
                text = entry.get("message")
                if not isinstance(text, str) or not text.strip():
                    detail = "message must be a non-empty string" if text is None or isinstance(text, str) else "message must be a string"
                    responses.append(_failed(Code.UNSUPPORTED_DATA_TYPE, detail, mobile_raw, clientsmsid))
                    continue
                if "\x00" in text:
                    responses.append(_failed(Code.UNSUPPORTED_DATA_TYPE, "message contains a NUL character", mobile_raw, clientsmsid))
                    continue
                encoding, parts = count_parts(text)
                if parts > max_parts:
                    responses.append(
                        _failed(Code.UNSUPPORTED_DATA_TYPE, f"message needs {parts} parts, the limit is {max_parts}", mobile_raw, clientsmsid)
                    )
                    continue
                # -- clientsmsid
                if clientsmsid is _ABSENT or clientsmsid is None:
                    clientsmsid_json = None
                elif is_inexact(clientsmsid):
                    # Past 64 bits a stored number would not be the partner's id: refused,
                    # and echoed with the digits it came with.
                    responses.append(
                        _failed(Code.UNSUPPORTED_DATA_TYPE, "clientsmsid number too large; send it as a string", mobile_raw, clientsmsid)
                    )
                    continue
                elif isinstance(clientsmsid, (str, int, float)) and not isinstance(clientsmsid, bool):
                    clientsmsid_json = orjson.dumps(clientsmsid).decode()
                    if len(clientsmsid_json) > MAX_CLIENTSMSID_LENGTH:
                        responses.append(_failed(Code.UNSUPPORTED_DATA_TYPE, "clientsmsid is too long", mobile_raw, clientsmsid))
                        continue
                else:
                    responses.append(_failed(Code.UNSUPPORTED_DATA_TYPE, "clientsmsid must be a string or a number", mobile_raw, clientsmsid))
                    continue
                # -- schedule
                when = entry.get("timeToSend")
                if when is None or when == "":
                    due_ms = now_ms
                else:
                    try:
                        scheduled = parse_time_to_send(when, now, zone)
                    except BadSchedule as exc:
                        responses.append(_failed(Code.UNSUPPORTED_DATA_TYPE, str(exc), mobile_raw, clientsmsid))
                        continue
                    due_ms = now_ms if scheduled is None else int(scheduled * 1000)
                # -- network
                msisdn = table.normaliser.normalise(mobile_text)
                if msisdn is None:
                    responses.append(_failed(Code.INVALID_MOBILE, None, mobile_raw, clientsmsid))
                    continue
                network = table.network_of(msisdn)
                if network is None or (routed is not None and network.id not in routed):
                    responses.append(_failed(Code.NETWORK_NOT_ALLOWED, "no route to this number's network", mobile_raw, clientsmsid))
                    continue
                if enabled is not None and network.id not in enabled:
                    responses.append(_failed(Code.NETWORK_NOT_ALLOWED, f"sender id not enabled on {network.name}", mobile_raw, clientsmsid))
                    continue
                if promotional:
                    # The footer is charged and sent as part of the text; the window holds the message.
                    text = with_footer(text, network.promo_footer)
                    encoding, parts = count_parts(text)
                    if parts > max_parts:
                        responses.append(
                            _failed(
                                Code.UNSUPPORTED_DATA_TYPE,
                                f"message with the opt-out footer needs {parts} parts, the limit is {max_parts}",
                                mobile_raw,
                                clientsmsid,
                            )
                        )
                        continue
                    due_ms = promotional_due(due_ms, network.promo_window or self.settings.promo_window, zone, self.settings.clock_offset_seconds)
            except InexactNumber:
                raise
            except Exception:
                log.exception("entry %d of a %s request could not be checked", len(responses), kind)
                responses.append(_failed(Code.MESSAGE_SYSTEM_ERROR, None, mobile_raw, clientsmsid))
                continue

            cost = parts * network.price_cents
            total_cost += cost
            digits = msisdn.digits
            rows.append(
                (
                    message_id,
                    partner_id,
                    shortcode_text,
                    digits,
                    network.id,
                    text,
                    int(encoding),  # the SMPP data_coding; a plain int binds faster than the IntEnum
                    parts,
                    cost,
                    clientsmsid_json,
                    priority,
                    scheduled_state,
                    due_ms,
                    now_ms,
                    batch_id,
                    due_ms + validity_ms,
                )
            )
            candidates.append((len(responses), mobile_raw, clientsmsid))
            responses.append(_success(int(digits) if mobile_as_number else digits, message_id, network.id, clientsmsid))

        if rows:
            rows, candidates, total_cost = await self._without_opted_out(partner_id, shortcode_text, rows, candidates, responses, total_cost)
        if not rows:
            return self._render(responses)
        await enforce_rate_limit(self.store, partner, rows)
        return await self._charge_and_store(partner, responses, rows, batch_id, candidates, total_cost, idempotency, kind, smpp_account)

    async def _without_opted_out(
        self,
        partner_id: str,
        shortcode: str,
        rows: list[tuple],
        candidates: list[tuple[int, Any, Any]],
        responses: list[dict[str, Any]],
        total_cost: int,
    ) -> tuple[list[tuple], list[tuple[int, Any, Any]], int]:
        """The rows whose numbers are not on the opt-out list; each listed one gets 1011 in its
        entry and costs nothing. One lookup on the list's primary key for the whole batch."""
        try:
            listed = await self.store.read(optout.listed, partner_id, shortcode, [row[3] for row in rows])
        except StoreUnavailable:
            raise BadRequest(Code.TRY_AGAIN_LATER) from None
        if not listed:
            return rows, candidates, total_cost
        kept_rows, kept_candidates = [], []
        for row, candidate in zip(rows, candidates):
            if row[3] in listed:
                position, mobile, clientsmsid = candidate
                responses[position] = _failed(Code.RECIPIENT_OPTED_OUT, None, mobile, clientsmsid)
                total_cost -= row[8]
            else:
                kept_rows.append(row)
                kept_candidates.append(candidate)
        return kept_rows, kept_candidates, total_cost

    async def _charge_and_store(
        self,
        partner: Partner,
        responses: list[dict[str, Any]],
        rows: list[tuple],
        batch_id: int,
        candidates: list[tuple[int, Any, Any]],
        total_cost: int,
        idempotency: tuple[str, str] | None,
        kind: str,
        smpp_account: str | None,
    ) -> bytes:
        body = self._render(responses)
        first_id, last_id = rows[0][0], rows[-1][0]
        reference = f"{kind} {first_id}" + (f"..{last_id}" if last_id != first_id else "")
        stored = (idempotency[0], idempotency[1], body) if idempotency is not None else None
        try:
            outcome = await self.store.accept(partner.id, total_cost, rows, batch_id, reference, stored, smpp_account)
        except StoreUnavailable:
            raise BadRequest(Code.TRY_AGAIN_LATER) from None
        except OutcomeUnknown:
            # Not "nothing was accepted" (4090 invites a resend that could send twice): each
            # entry names its message id, which getdlr answers once the store is back.
            log.error("a %s batch of %d messages may or may not be stored (commit cut off)", kind, len(rows))
            for (position, mobile, clientsmsid), row in zip(candidates, rows):
                entry = _failed(Code.MESSAGE_SYSTEM_ERROR, "outcome unknown: ask getdlr for this messageid", mobile, clientsmsid)
                entry["messageid"] = str(row[0])
                responses[position] = entry
            return self._render(responses)
        except IdempotencyConflict:
            assert idempotency is not None
            replayed = await self.stored_answer(partner, *idempotency)
            if replayed is None:
                raise BadRequest(Code.TRY_AGAIN_LATER) from None
            return replayed
        except Exception:
            log.exception("a %s batch of %d messages could not be stored; nothing was charged", kind, len(rows))
            for position, mobile, clientsmsid in candidates:
                responses[position] = _failed(Code.MESSAGE_SYSTEM_ERROR, "not stored, not charged", mobile, clientsmsid)
            return self._render(responses)
        if isinstance(outcome, PartnerInactive):
            raise BadRequest(Code.INVALID_CREDENTIALS)
        if isinstance(outcome, LowCredit):
            detail = f"Balance {format_units(outcome.balance)}, required {format_units(total_cost)}"
            for position, mobile, clientsmsid in candidates:
                responses[position] = _failed(Code.LOW_CREDIT, detail, mobile, clientsmsid)
            return self._render(responses)
        metrics.units_charged(partner.id, total_cost)
        if self.on_accepted is not None:
            self.on_accepted()
        return body

    async def stored_answer(self, partner: Partner, key: str, body_sha256: str) -> bytes | None:
        """The answer given to an earlier request with this Idempotency-Key, None if there
        was none within 24 h; BadRequest(1010) if that request had a different body."""
        try:
            answer = await self.store.find_answer(partner.id, key)
        except StoreUnavailable:
            raise BadRequest(Code.TRY_AGAIN_LATER) from None
        if answer is None:
            return None
        if answer.body_sha256 != body_sha256:
            raise BadRequest(Code.UNSUPPORTED_REQUEST_TYPE, "Idempotency-Key was already used with a different body")
        return answer.response

    def _render(self, responses: list[dict[str, Any]]) -> bytes:
        metrics.messages_answered(responses)
        return self.render(responses)


class _Absent:
    """Marks a clientsmsid the partner did not send (so none is echoed)."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def _failed(code: Code, detail: str | None, mobile: Any, clientsmsid: Any) -> dict[str, Any]:
    entry = {"response-code": int(code), "response-description": describe(code, detail), "mobile": mobile}
    if clientsmsid is not _ABSENT:
        entry["clientsmsid"] = clientsmsid
    return entry


def _success(mobile: Any, message_id: int, network_id: int, clientsmsid: Any) -> dict[str, Any]:
    entry = {"response-code": 200, "response-description": "Success", "mobile": mobile, "messageid": str(message_id)}
    if clientsmsid is not _ABSENT:
        entry["clientsmsid"] = clientsmsid
    entry["networkid"] = network_id
    return entry


async def enforce_rate_limit(store: Store, partner: Partner, rows: Sequence[tuple]) -> None:
    """Takes the parts of `rows` from a limited partner's budget, or refuses the request
    whole (RateLimited: 1010, Retry-After) before anything is charged. Partners without a
    limit cost nothing here. The budget lives in the store, so every process and every
    transport (HTTP, SMPP) shares it."""
    if partner.max_mps is None:
        return
    parts = sum(row[7] for row in rows)  # NewMessage.parts
    try:
        wait = await store.write(accounts.take_tokens, partner.id, partner.max_mps, parts)
    except StoreUnavailable:
        raise BadRequest(Code.TRY_AGAIN_LATER) from None
    if wait > 0:
        raise RateLimited(Code.UNSUPPORTED_REQUEST_TYPE, f"rate limit of {partner.max_mps} messages per second", retry_after=max(1, math.ceil(wait)))
