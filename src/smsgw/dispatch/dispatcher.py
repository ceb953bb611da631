"""The dispatcher: claims due messages from the store, hands them to SMSC connections, and
writes back what happened.

- Claims are leases: a claimed message belongs to this dispatcher until its lease runs out,
  so a dispatcher killed mid-run loses nothing: another claims the messages again. While it
  lives, a dispatcher renews the leases of every message it holds, and it never starts a
  submit_sm on a lease close to running out, so a live dispatcher's message is never taken
  over (a slow carrier or a long wait for a bind sends nothing twice).
- At most `window` messages per connection are sent and not yet recorded: a message takes
  one of `window` slots before its submit_sm and frees it only once its outcome is committed.
  So a dispatcher killed at any moment has sent at most `window` messages per connection
  that the store does not know were sent, and only those can go out twice. Messages claimed
  but not yet sent are merely leased: another dispatcher takes them after the lease.
- It claims OTP before bulk, oldest first, a few windows ahead (so that claims are batches,
  not single rows), and no more than its connections can send within a lease (TPS).
- Outcomes and receipts are group-committed: whatever arrived while one transaction was
  being written goes into the next. A receipt is acknowledged to the SMSC only after it is
  committed. A batch the store refuses for a reason other than being away is split until the
  one bad item is found; that item is logged and given up, the rest is written.
- Routes (docs/routing.md): each message goes to a usable route of its network, best priority
  first, spread by weight; a route unbound or out after submits to retry in a row is left
  until its probe succeeds. A message a route refuses for good is tried once on another
  route of its network before it fails. Connectors are seen only through connectors/base.py.
- A submit_sm the SMSC never answers may still have reached the handset, so it is sent again
  at most `max_unanswered_resends` times; then the message ends Unknown, not refunded. A
  message the carrier took whose receipt does not come by the end of its validity plus
  `receipt_grace_seconds` ends too (SentToNetwork, final).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo

from .. import metrics
from ..config import Settings, setting_defaults
from ..connectors.base import Connector, OutboundMessage, Receipt, ReceiptSink, SubmitOutcome, Verdict, smsc_id_keys
from ..domain.encoding import Encoding
from ..domain.states import DeliveryState
from ..store import binds, outcomes, queue, retention
from ..store.errors import StoreUnavailable
from ..store.outcomes import EXPIRED, Failure, Retry, Submitted
from ..store.queue import Claimed
from ..store.receipts import IncomingReceipt, ReceiptOutcome
from ..store.store import Store, now_ms
from .backoff import backoff_ms
from .routing import RouteConfig, RouteHealth, RouteState, UpstreamConfig

log = logging.getLogger(__name__)


@dataclass
class Lane:
    """One route (an SMSC connection, an upstream provider) and what it may carry."""

    config: RouteConfig
    connector: Connector
    active: bool = False  # this dispatcher holds the connection's bind lease and is bound
    lease_valid_until: float = 0.0  # monotonic: when the bind lease, last confirmed, runs out
    in_flight: int = 0  # claimed and not yet recorded
    unrecorded: asyncio.Semaphore = field(init=False)
    health: RouteHealth = field(default_factory=RouteHealth)
    credit: int = 0  # smooth weighted round robin among the routes of one priority
    # Since this dispatcher bound it, for the route reports (store/binds.py RouteReport).
    bound_since: int = 0  # epoch ms
    accepted: int = 0
    accepted_reported: int = 0
    failovers: int = 0

    def __post_init__(self) -> None:
        self.unrecorded = asyncio.Semaphore(self.config.window)

    @property
    def capacity(self) -> int:
        """Messages this lane may hold from claim until their outcome is committed: a few
        windows, and no more than it can send well within a lease (a low TPS must not hoard
        claimed messages)."""
        limit = self.config.window * 4
        if self.config.tps:
            limit = min(limit, max(1, int(self.config.tps * 10)))
        return limit

    @property
    def free(self) -> int:
        return self.capacity - self.in_flight

    def usable(self, now: float) -> bool:
        return self.active and self.connector.bound and self.health.usable(now)


_SHARED_DEFAULTS = setting_defaults()


@dataclass(frozen=True)
class DispatchSettings:
    batch_size: int = 500
    poll_interval: float = 0.25
    sweep_interval: float = 2.0
    # Claims expire what they meet; this sweep is for messages no dispatcher claims at all,
    # and for messages the carrier took whose receipt never came.
    expire_interval: float = 60.0
    stop_grace_seconds: float = 10.0
    # The service settings the dispatcher shares: declared (with their defaults) in
    # config.Settings, and taken from there by `of`.
    lease_seconds: float = _SHARED_DEFAULTS["lease_seconds"]
    bind_lease_seconds: float = _SHARED_DEFAULTS["bind_lease_seconds"]
    retry_base_seconds: float = _SHARED_DEFAULTS["retry_base_seconds"]
    retry_max_seconds: float = _SHARED_DEFAULTS["retry_max_seconds"]
    max_unanswered_resends: int = _SHARED_DEFAULTS["max_unanswered_resends"]
    receipt_grace_seconds: float = _SHARED_DEFAULTS["receipt_grace_seconds"]
    route_failure_threshold: int = _SHARED_DEFAULTS["route_failure_threshold"]
    route_probe_seconds: float = _SHARED_DEFAULTS["route_probe_seconds"]

    @classmethod
    def of(cls, settings: Settings, **own: Any) -> DispatchSettings:
        """The service's values of the shared settings, with the dispatcher's own knobs."""
        shared = {name: getattr(settings, name) for name in _SHARED_DEFAULTS if name in {f.name for f in fields(cls)}}
        return cls(**shared, **own)


@dataclass
class _Pending:
    """Outcomes waiting for the next transaction; each may have a waiter for its commit."""

    items: list[tuple[Submitted | Retry | Failure | IncomingReceipt, asyncio.Future[None] | None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items)

    def split(self) -> tuple[_Pending, _Pending]:
        middle = len(self.items) // 2
        return _Pending(self.items[:middle]), _Pending(self.items[middle:])

    def by_kind(self) -> tuple[list[Submitted], list[Retry], list[Failure], list[IncomingReceipt]]:
        submitted: list[Submitted] = []
        retries: list[Retry] = []
        failures: list[Failure] = []
        receipts: list[IncomingReceipt] = []
        for item, _ in self.items:
            if isinstance(item, Submitted):
                submitted.append(item)
            elif isinstance(item, Retry):
                retries.append(item)
            elif isinstance(item, Failure):
                failures.append(item)
            else:
                receipts.append(item)
        return submitted, retries, failures, receipts

    def settle(self, error: BaseException | None = None) -> None:
        for _, done in self.items:
            if done is not None and not done.done():
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)


class PoisonOutcome(Exception):
    """An outcome the store refused on its own (not for being away); it was given up."""


def new_owner_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{random.randrange(16**6):06x}"


class Dispatcher:
    def __init__(self, store: Store, lanes: list[Lane], zone: ZoneInfo, settings: DispatchSettings | None = None, owner: str | None = None) -> None:
        self.store = store
        self.lanes = lanes
        self.zone = zone
        self.settings = settings or DispatchSettings()
        self.owner = owner or new_owner_id()
        self.stats: Counter[str] = Counter()
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._has_pending = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._sends: dict[int, asyncio.Task[Any]] = {}  # message id -> its send
        # Messages leased to this dispatcher and not yet recorded -> when their lease ends (ms).
        self._leased: dict[int, int] = {}
        self._submitting: set[int] = set()  # of those, the ones handed to a connector
        self._stopping = False
        # Called when delivery reports were queued for partners' callback URLs.
        self.on_callbacks_queued: Callable[[], Awaitable[None]] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        for lane in self.lanes:
            lane.health = RouteHealth(self.settings.route_failure_threshold, self.settings.route_probe_seconds)
        try:
            await self._coordinate_binds()
        except StoreUnavailable as exc:
            log.warning("cannot take SMSC binds yet: %s", exc)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="dispatch-claim"),
            asyncio.create_task(self._flush_loop(), name="dispatch-flush"),
            asyncio.create_task(self._sweep_loop(), name="dispatch-sweep"),
            asyncio.create_task(self._bind_loop(), name="dispatch-binds"),
            asyncio.create_task(self._renew_loop(), name="dispatch-leases"),
        ]

    async def stop(self) -> None:
        """Stops claiming, lets in-flight sends finish for a while, writes every outcome,
        then closes the connections (a receipt that arrives meanwhile is still recorded)."""
        self._stopping = True
        self._wake.set()
        # Messages still waiting for a window slot go back to the queue at once, not after
        # their lease (an OTP must not wait a minute for the next dispatcher).
        waiting = [mid for mid in self._sends if mid not in self._submitting]
        for mid in waiting:
            self._sends[mid].cancel()
        if waiting:
            with contextlib.suppress(StoreUnavailable):
                await self.store.write(queue.release, self.owner, waiting)
        if self._sends:
            await asyncio.wait(list(self._sends.values()), timeout=self.settings.stop_grace_seconds)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._drain()
        for lane in self.lanes:
            await self._deactivate(lane)
        await self._drain()
        with contextlib.suppress(StoreUnavailable):
            await self.store.write(binds.release_all, self.owner)

    async def _drain(self) -> None:
        batch, self._pending = self._pending, _Pending()
        if batch:
            with contextlib.suppress(StoreUnavailable):
                await self._write(batch)

    def route_states(self) -> dict[str, str]:
        """Route name -> up, down or probing; a route not bound here is down."""
        now = time.monotonic()
        return {
            lane.config.name: lane.health.state(now).value if lane.active and lane.connector.bound else RouteState.DOWN.value for lane in self.lanes
        }

    def wake(self) -> None:
        """New messages were accepted: look for due work now rather than at the next poll."""
        self._wake.set()

    # -- claiming and sending -----------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping:
            # Claim in batches: wait until a lane has room for half its capacity, unless idle.
            open_lanes = [lane for lane in self.lanes if lane.active and lane.free > 0 and (lane.free * 2 >= lane.capacity or lane.in_flight == 0)]
            if not open_lanes:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            networks = self._networks_of(open_lanes)
            room = sum(lane.free for lane in open_lanes)
            now = now_ms()
            try:
                claimed = await self.store.write(
                    queue.claim_due, self.owner, now, min(room, self.settings.batch_size), int(self.settings.lease_seconds * 1000), networks
                )
            except StoreUnavailable as exc:
                log.warning("cannot claim messages: %s", exc)
                await asyncio.sleep(1.0)
                continue
            except Exception:
                log.exception("claiming messages failed")
                await asyncio.sleep(1.0)
                continue
            for message in claimed:
                self._dispatch(message, now)
            self.stats["claimed"] += len(claimed)
            if len(claimed) < min(room, self.settings.batch_size):
                # Drained: wait for new work or the next poll.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_interval):
                        await self._wake.wait()

    def _networks_of(self, lanes: list[Lane]) -> list[int] | None:
        networks: set[int] = set()
        for lane in lanes:
            if lane.config.networks is None:
                return None
            networks |= lane.config.networks
        return sorted(networks)

    def _dispatch(self, message: Claimed, now: int) -> None:
        if message.expires_at is not None and now >= message.expires_at:
            self._enqueue(Failure(message.id, int(DeliveryState.ABSENT_SUBSCRIBER), EXPIRED, owner=self.owner, keeps_last_error=True))
            return
        lane = self._lane_for(message.network_id, time.monotonic())
        if lane is None:
            # No connection of ours carries this network any more: let another dispatcher try.
            self._enqueue(Retry(message.id, self.owner, now + 60_000, "no route for this network here"))
            return
        lane.in_flight += 1
        self._leased[message.id] = now + int(self.settings.lease_seconds * 1000)
        task = asyncio.create_task(self._send(lane, message))
        self._sends[message.id] = task
        task.add_done_callback(functools.partial(self._send_ended, message.id))

    def _send_ended(self, message_id: int, _task: asyncio.Task[None]) -> None:
        self._sends.pop(message_id, None)

    def _lane_for(self, network_id: int, now: float, besides: Lane | None = None) -> Lane | None:
        """The route for one message: among the usable routes of the network, those of the best
        priority, spread by weight (smooth weighted round robin: 3:1 weights send three of
        every four messages to the first, interleaved). With none usable, the route with most
        room, where the message waits for the bind as it would with a single route."""
        best_priority = None
        chosen: list[Lane] = []
        fallback = None
        for lane in self.lanes:
            if lane is besides or not lane.active or not lane.config.serves(network_id):
                continue
            if fallback is None or lane.free > fallback.free:
                fallback = lane
            if not lane.usable(now):
                continue
            priority = lane.config.priority
            if best_priority is None or priority < best_priority:
                best_priority, chosen = priority, [lane]
            elif priority == best_priority:
                chosen.append(lane)
        if not chosen:
            return fallback
        if len(chosen) == 1:
            return chosen[0]
        total = 0
        pick = chosen[0]
        for lane in chosen:
            lane.credit += lane.config.weight
            total += lane.config.weight
            if lane.credit > pick.credit:
                pick = lane
        pick.credit -= total
        return pick

    def _move(self, message: Claimed, lane: Lane, now: float) -> Lane | None:
        """A usable route of the message's network other than `lane`, which has become unusable
        while the message waited for its window (messages leave a dead route at once instead of
        waiting for its bind)."""
        other = self._lane_for(message.network_id, now, besides=lane)
        if other is None or not other.usable(now):
            return None
        lane.in_flight -= 1
        other.in_flight += 1
        self._slot_freed.set()
        return other

    async def _send(self, lane: Lane, message: Claimed) -> None:
        holding: Lane | None = None  # the lane whose window slot this message holds
        try:
            outbound = OutboundMessage(message.id, message.shortcode, message.msisdn, message.text, Encoding(message.data_coding))
            while True:
                await lane.unrecorded.acquire()
                holding = lane
                moved = None if lane.usable(time.monotonic()) else self._move(message, lane, time.monotonic())
                if moved is None:
                    break
                lane.unrecorded.release()
                holding, lane = None, moved
            if not self._lease_holds(message.id):
                # Its lease could not be renewed (the store is away): another dispatcher
                # may take the message over soon, so it is not sent from here.
                await self._give_back(message, "lease not renewed in time")
                return
            self._submitting.add(message.id)
            outcome = await self._submit(lane, outbound)
            refused_by = None
            if outcome.verdict is Verdict.FAILED:
                # Refused for good by this route: once, another route of the network may take it.
                other = self._lane_for(message.network_id, time.monotonic(), besides=lane)
                if other is not None and not self._lease_holds(message.id):
                    await self._give_back(message, f"lease not renewed in time to reroute after: {outcome.reason}")
                    return
                if other is not None:
                    metrics.submitted(lane.config.name, outcome, message.created_at)
                    self.stats["rerouted"] += 1
                    metrics.REROUTED.labels(lane.config.name).inc()
                    refused_by = (lane.config.name, outcome.reason)
                    lane.unrecorded.release()
                    holding = None
                    lane.in_flight -= 1
                    other.in_flight += 1
                    self._slot_freed.set()
                    lane = other
                    await lane.unrecorded.acquire()
                    holding = lane
                    if not self._lease_holds(message.id):
                        # The wait for the other route's window outlasted the lease.
                        await self._give_back(message, f"lease not renewed in time to reroute after: {outcome.reason}")
                        return
                    outcome = await self._submit(lane, outbound)
            await self._enqueue(self._outcome(lane, message, outcome, refused_by), wait=True)
        except PoisonOutcome:
            pass  # logged where it was found; the lease runs out and the message goes again
        finally:
            if holding is not None:
                holding.unrecorded.release()
            self._leased.pop(message.id, None)
            self._submitting.discard(message.id)
            lane.in_flight -= 1
            self._slot_freed.set()

    async def _give_back(self, message: Claimed, reason: str) -> None:
        """Back to the queue unsent from here, committed before its window slot is freed."""
        self.stats["given back"] += 1
        await self._enqueue(Retry(message.id, self.owner, now_ms(), reason), wait=True)

    def _lease_holds(self, message_id: int) -> bool:
        return self._leased.get(message_id, 0) - now_ms() >= self.settings.lease_seconds * 1000 / 2

    def _enqueue(self, item: Submitted | Retry | Failure | IncomingReceipt, wait: bool = False) -> Any:
        """Queues an outcome for the next transaction; with `wait`, returns an awaitable that
        completes when it is committed."""
        done: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if wait else None
        self._pending.items.append((item, done))
        self._has_pending.set()
        return done

    async def _submit(self, lane: Lane, outbound: OutboundMessage) -> SubmitOutcome:
        probe = lane.health.taken(time.monotonic())
        try:
            outcome = await lane.connector.submit(outbound)
        except Exception as exc:  # a connector bug must not lose the message
            log.exception("connector %s failed on message %d", lane.config.name, outbound.message_id)
            outcome = SubmitOutcome.retry(f"connector error: {type(exc).__name__}", unanswered=True)
        if lane.health.answered(time.monotonic(), retry=outcome.verdict is Verdict.RETRY, probe=probe):
            self.stats["routes out"] += 1
            lane.failovers += 1
            metrics.ROUTES_OUT.labels(lane.config.name).inc()
            log.warning(
                "route %s is out for %.0f s after %d submits to retry in a row", lane.config.name, lane.health.probe_seconds, lane.health.failures
            )
        return outcome

    def _outcome(
        self, lane: Lane, message: Claimed, outcome: SubmitOutcome, refused_by: tuple[str, str] | None = None
    ) -> Submitted | Retry | Failure:
        now = now_ms()
        metrics.submitted(lane.config.name, outcome, message.created_at)
        if outcome.verdict is Verdict.ACCEPTED:
            keys = [smsc_id_keys(smsc_id) for smsc_id in outcome.smsc_message_ids]
            self.stats["submitted"] += 1
            lane.accepted += 1
            return Submitted(message.id, lane.config.name, list(outcome.smsc_message_ids), keys)
        error = outcome.reason or f"code {outcome.code}"
        if refused_by is not None:
            error = f"{error} (also refused by {refused_by[0]}: {refused_by[1]})"
        unanswered = outcome.unanswered
        if unanswered and message.unanswered >= self.settings.max_unanswered_resends:
            self.stats["unanswered"] += 1
            sent = message.unanswered + 1
            return Failure(
                message.id,
                int(DeliveryState.UNKNOWN),
                f"no submit_sm_resp to {sent} submit_sm: {error}",
                attempted=True,
                owner=self.owner,
                unanswered=True,
            )
        if outcome.verdict is Verdict.RETRY:
            due = now + backoff_ms(message.attempts + 1, self.settings.retry_base_seconds, self.settings.retry_max_seconds)
            if message.expires_at is not None and due >= message.expires_at:
                self.stats["expired"] += 1
                return Failure(
                    message.id,
                    int(DeliveryState.ABSENT_SUBSCRIBER),
                    f"expired after temporary errors: {error}",
                    attempted=True,
                    owner=self.owner,
                    unanswered=unanswered,
                )
            self.stats["retried"] += 1
            return Retry(message.id, self.owner, due, error, unanswered=unanswered)
        self.stats["rejected"] += 1
        return Failure(
            message.id, int(DeliveryState.DELIVERY_IMPOSSIBLE), f"rejected by {lane.config.name}: {error}", attempted=True, owner=self.owner
        )

    async def _renew_loop(self) -> None:
        """Keeps the leases of this dispatcher's messages alive while it lives."""
        lease_ms = int(self.settings.lease_seconds * 1000)
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 4)
            ids = list(self._leased)
            if not ids:
                continue
            until = now_ms() + lease_ms
            try:
                await self.store.write(queue.renew_leases, self.owner, ids, until)
            except StoreUnavailable as exc:
                log.warning("cannot renew message leases: %s", exc)
                continue
            except Exception:
                log.exception("renewing message leases failed")
                continue
            for mid in ids:
                if mid in self._leased:
                    self._leased[mid] = until

    # -- receipts ------------------------------------------------------------------------------

    def receipt_sink(self, connector_name: str) -> ReceiptSink:
        """The on_receipt callback for one connection: returns once the receipt is stored."""

        async def on_receipt(receipt: Receipt) -> None:
            done_at = int(receipt.done_at * 1000) if receipt.done_at is not None else None
            incoming = IncomingReceipt(
                connector_name,
                receipt.smsc_message_id,
                smsc_id_keys(receipt.smsc_message_id),
                int(receipt.state),
                receipt.stat,
                receipt.error,
                done_at,
            )
            # Raises if this receipt cannot be stored: the SMSC is then told to deliver it again.
            await self._enqueue(incoming, wait=True)

        return on_receipt

    # -- writing outcomes ----------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._has_pending.wait()
            self._has_pending.clear()
            batch, self._pending = self._pending, _Pending()
            if not batch:
                continue
            try:
                await self._write(batch)
            except StoreUnavailable as exc:
                log.warning("cannot record delivery outcomes yet (kept, retrying): %s", exc)
                self._pending.items[:0] = batch.items
                await asyncio.sleep(1.0)
                self._has_pending.set()

    async def _write(self, batch: _Pending) -> None:
        """Writes a batch; one the store refuses (not for being away) is split in halves until
        the item it refuses is alone, and that item alone is given up."""
        try:
            outcome = await self._record(batch)
        except StoreUnavailable:
            raise
        except Exception as exc:
            if len(batch.items) == 1:
                item = batch.items[0][0]
                log.error("giving up an outcome the store refuses: %r (%s: %s)", item, type(exc).__name__, exc)
                self.stats["outcomes refused by the store"] += 1
                batch.settle(PoisonOutcome(str(exc)))
                return
            for half in batch.split():
                await self._write(half)
            return
        batch.settle()
        await self._finished(outcome)

    async def _record(self, batch: _Pending) -> ReceiptOutcome:
        submitted, retries, failures, receipts = batch.by_kind()
        outcome = await self.store.write(outcomes.record_outcomes, submitted, retries, failures, receipts, now_ms(), self.zone)
        self.stats["receipts matched"] += outcome.matched
        self.stats["receipts unmatched"] += outcome.unmatched
        metrics.receipts_recorded(outcome)
        return outcome

    async def _finished(self, outcome: ReceiptOutcome) -> None:
        if outcome.callbacks and self.on_callbacks_queued is not None:
            await self.on_callbacks_queued()

    # -- SMSC binds ----------------------------------------------------------------------------

    async def _bind_loop(self) -> None:
        renewal = self.settings.bind_lease_seconds / 3
        while True:
            await asyncio.sleep(renewal)
            try:
                async with asyncio.timeout(renewal):
                    await self._coordinate_binds()
            except (StoreUnavailable, TimeoutError) as exc:
                log.warning("cannot renew SMSC bind leases: %s", exc or "the store is slow")
            except Exception:
                log.exception("coordinating SMSC binds failed")
            await self._unbind_unconfirmed()

    async def _coordinate_binds(self) -> None:
        """Holds exactly the connections this dispatcher's lease says it may bind."""
        names = [lane.config.name for lane in self.lanes]
        asked = time.monotonic()
        reported = self._route_reports()
        reports = [report for _, report in reported]
        plan = await self.store.write(binds.coordinate, self.owner, names, now_ms(), int(self.settings.bind_lease_seconds * 1000), reports)
        for lane, report in reported:
            lane.accepted_reported = report.accepted
        for lane in self.lanes:
            if lane.config.name in plan.held:
                lane.lease_valid_until = asked + self.settings.bind_lease_seconds
                if not lane.active:
                    await self._activate(lane)
            elif lane.active:
                await self._deactivate(lane)

    def _route_reports(self) -> list[tuple[Lane, binds.RouteReport]]:
        """Of the routes this dispatcher holds: what the console shows of them."""
        states = self.route_states()
        return [
            (
                lane,
                binds.RouteReport(
                    route=lane.config.name,
                    kind="upstream" if isinstance(lane.config, UpstreamConfig) else "smpp",
                    networks=",".join(str(n) for n in sorted(lane.config.networks)) if lane.config.networks is not None else None,
                    priority=lane.config.priority,
                    weight=lane.config.weight,
                    state=states[lane.config.name],
                    bound=lane.connector.bound,
                    accepted=lane.accepted,
                    accepted_recent=lane.accepted - lane.accepted_reported,
                    failovers=lane.failovers,
                    since=lane.bound_since,
                ),
            )
            for lane in self.lanes
            if lane.active
        ]

    async def _unbind_unconfirmed(self) -> None:
        """A bind whose lease this dispatcher could not renew in time is dropped: another
        dispatcher may hold the lease by now, and the carrier must not count a bind too many
        (the store lets a lease be taken over only some time after it ran out, see
        binds.coordinate)."""
        now = time.monotonic()
        for lane in self.lanes:
            if lane.active and now >= lane.lease_valid_until:
                log.warning("dispatcher %s drops %s: its bind lease was not renewed in time", self.owner, lane.config.name)
                await self._deactivate(lane)

    async def _activate(self, lane: Lane) -> None:
        log.info("dispatcher %s binds %s", self.owner, lane.config.display)
        await lane.connector.start()
        lane.active = True
        lane.bound_since, lane.accepted, lane.accepted_reported, lane.failovers = now_ms(), 0, 0, 0
        self._slot_freed.set()

    async def _deactivate(self, lane: Lane) -> None:
        if not lane.active:
            return
        lane.active = False
        log.info("dispatcher %s unbinds %s", self.owner, lane.config.name)
        with contextlib.suppress(Exception):
            await lane.connector.stop()

    # -- housekeeping --------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        next_expiry = time.monotonic()
        limit = 1000
        grace_ms = int(self.settings.receipt_grace_seconds * 1000)
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            if time.monotonic() < next_expiry:
                continue
            try:
                outcome = await self.store.write(retention.sweep, now_ms(), self.zone, grace_ms, limit)
                # A full batch may leave more behind: look again at the next sweep.
                if len(outcome.finished) < limit:
                    next_expiry = time.monotonic() + self.settings.expire_interval
                self.stats["closed by the sweep"] += len(outcome.finished)
                await self._finished(outcome)
            except StoreUnavailable as exc:
                log.warning("housekeeping skipped: %s", exc)
            except Exception:
                log.exception("housekeeping failed")
