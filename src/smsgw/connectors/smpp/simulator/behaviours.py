"""The submit_sm behaviours of the SMSC simulator and the one registry a flag names them by
(`BEHAVIOURS`; the reserved test numbers in `TEST_NUMBER_SUFFIXES`). See the package docstring."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..pdu import (
    ESME_RINVDSTADR,
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RTHROTTLED,
    SubmitSm,
)

if TYPE_CHECKING:
    from .server import SmscSimulator
    from .session import SmscSession, SubmitRecord


class SubmitContext:
    """What a behaviour may do with one submit_sm."""

    __slots__ = ("pdu", "record", "session", "sim")

    def __init__(self, sim: SmscSimulator, session: SmscSession, pdu: SubmitSm, record: SubmitRecord) -> None:
        self.sim = sim
        self.session = session
        self.pdu = pdu
        self.record = record

    def accept(self) -> str:
        message_id = self.sim.new_message_id()
        self.record.message_id = message_id
        self.session.answer_submit(self.pdu, self.record, ESME_ROK, message_id)
        return message_id

    def reject(self, status: int) -> None:
        self.session.answer_submit(self.pdu, self.record, status, "")

    def receipt(self, stat: str, err: str = "000", delay: float | None = None) -> None:
        self.sim.schedule_receipt(self.session, self.pdu, self.record, stat, err, self.sim.receipt_delay if delay is None else delay)


class Behaviour:
    name = "behaviour"

    def handle(self, context: SubmitContext) -> None:
        raise NotImplementedError


class Happy(Behaviour):
    name = "happy"
    stat = "DELIVRD"
    err = "000"

    def handle(self, context: SubmitContext) -> None:
        context.accept()
        context.receipt(self.stat, self.err)


class Undeliverable(Happy):
    name = "undeliverable"
    stat = "UNDELIV"
    err = "001"


class Blacklisted(Happy):
    name = "blacklisted"
    stat = "BLACKLST"
    err = "000"


class Expired(Happy):
    name = "expired"
    stat = "EXPIRED"
    err = "027"


class DelayedReceipt(Happy):
    name = "delayed"

    def __init__(self, delay: float = 2.0) -> None:
        self.delay = delay

    def handle(self, context: SubmitContext) -> None:
        context.accept()
        context.receipt(self.stat, self.err, self.delay)


class SlowResponse(Happy):
    """Answers each submit_sm only after `delay` seconds (a congested or distant SMSC)."""

    name = "slow"

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay

    def handle(self, context: SubmitContext) -> None:
        context.session.call_later(self.delay, super().handle, context)


class Rejected(Behaviour):
    name = "rejected"

    def __init__(self, status: int = ESME_RINVDSTADR) -> None:
        self.status = status

    def handle(self, context: SubmitContext) -> None:
        context.reject(self.status)


class _Refusing(Behaviour):
    """Refuses with `status` above `tps` (token bucket, 100 ms of burst) or every `every`th
    submit; with neither, refuses every submit. Accepted submits take the happy path."""

    status = ESME_RTHROTTLED

    def __init__(self, tps: float = 0, every: int = 0) -> None:
        self.tps = tps
        self.every = every
        self._count = 0
        self._capacity = max(1.0, tps / 10)
        self._tokens = self._capacity
        self._last = time.monotonic()
        self._happy = Happy()

    def refuses(self) -> bool:
        if self.tps > 0:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.tps)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return False
            return True
        if self.every > 0:
            self._count += 1
            return self._count % self.every == 0
        return True

    def handle(self, context: SubmitContext) -> None:
        if self.refuses():
            context.sim.refused += 1
            context.reject(self.status)
        else:
            self._happy.handle(context)


class Throttling(_Refusing):
    name = "throttle"
    status = ESME_RTHROTTLED


class QueueFull(_Refusing):
    name = "queuefull"
    status = ESME_RMSGQFUL


class NoResponse(Behaviour):
    name = "noresponse"

    def handle(self, context: SubmitContext) -> None:
        pass  # never answered: stays outstanding until the connection ends


class DropConnection(Behaviour):
    """Answers `after` submits on each connection, then answers no more and closes the
    connection once `hold` submits are unanswered (or `hold_timeout` after the first of
    them), so that the ESME loses a full window. At most `max_drops` times (None: always)."""

    name = "drop"

    def __init__(self, after: int = 100, hold: int = 1, hold_timeout: float = 0.5, max_drops: int | None = None) -> None:
        self.after = after
        self.hold = max(1, hold)
        self.hold_timeout = hold_timeout
        self.max_drops = max_drops
        self.drops = 0
        self._happy = Happy()

    def handle(self, context: SubmitContext) -> None:
        session = context.session
        exhausted = self.max_drops is not None and self.drops >= self.max_drops
        answered = session.counters["drop_answered"]
        if exhausted or answered < self.after:
            session.counters["drop_answered"] += 1
            self._happy.handle(context)
            return
        session.counters["drop_held"] += 1
        if session.counters["drop_held"] == 1:
            session.call_later(self.hold_timeout, self._drop, session)
        if session.counters["drop_held"] >= self.hold:
            self._drop(session)

    def _drop(self, session: SmscSession) -> None:
        if session.open:
            self.drops += 1
            session.sim.drops += 1
            session.abort(f"dropping the connection with {session.unanswered} submit_sm unanswered")


class DropNow(DropConnection):
    """Closes the connection as soon as this submit_sm arrives (test number ending 0008)."""

    name = "drop-now"

    def handle(self, context: SubmitContext) -> None:
        self._drop(context.session)


class ReceiptBeforeResponse(Behaviour):
    name = "early"

    def handle(self, context: SubmitContext) -> None:
        message_id = context.sim.new_message_id()
        context.record.message_id = message_id
        context.sim.schedule_receipt(context.session, context.pdu, context.record, "DELIVRD", "000", 0.0)
        context.session.answer_submit(context.pdu, context.record, ESME_ROK, message_id)


# The one registry of the behaviours a flag can name (`behaviour=`, `smsgw smsc-sim
# --behaviour`), each built with the simulator's options.
BEHAVIOURS: dict[str, Callable[[SmscSimulator], Behaviour]] = {
    "happy": lambda _sim: Happy(),
    "delayed": lambda sim: DelayedReceipt(sim.receipt_delay or 2.0),
    "undeliverable": lambda _sim: Undeliverable(),
    "expired": lambda _sim: Expired(),
    "rejected": lambda sim: Rejected(sim.reject_status),
    "throttle": lambda sim: Throttling(*sim.throttle_options),
    "queuefull": lambda sim: QueueFull(*sim.throttle_options),
    "noresponse": lambda _sim: NoResponse(),
    "drop": lambda sim: DropConnection(*sim.drop_options),
    "early": lambda _sim: ReceiptBeforeResponse(),
    "slow": lambda sim: SlowResponse(sim.response_delay),
    "blacklisted": lambda _sim: Blacklisted(),
}
BEHAVIOUR_NAMES = tuple(BEHAVIOURS)

# The reserved test numbers (only with `test_numbers=True`): some behaviours always, whatever
# the throttle and drop options.
TEST_NUMBER_SUFFIXES: dict[str, Callable[[SmscSimulator], Behaviour]] = {
    "0001": lambda _sim: Undeliverable(),
    "0002": lambda sim: Rejected(sim.reject_status),
    "0003": lambda sim: DelayedReceipt(sim.receipt_delay or 2.0),
    "0004": lambda _sim: Expired(),
    "0005": lambda _sim: Throttling(),
    "0006": lambda _sim: QueueFull(),
    "0007": lambda _sim: NoResponse(),
    "0008": lambda _sim: DropNow(),
    "0009": lambda _sim: ReceiptBeforeResponse(),
}
