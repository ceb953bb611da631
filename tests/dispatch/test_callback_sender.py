"""The callback sender against partners' receivers that are broken, hang or were given URLs
that cannot be sent to: each failure stays with its own partner's callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import orjson
import pytest

from smsgw.dispatch.inbound import InboundForwarder
from smsgw.dispatch.webhooks import CallbackSender, signature_v2
from smsgw.store import callbacks, queue

from ..helpers import entry, wait_for
from .conftest import Rig, number
from .test_callbacks_and_receipts import CallbackReceiver


async def queue_reports(rig: Rig, partner_id: str, count: int, first: int) -> list[str]:
    """Accepts `count` messages for the partner and puts their reports in the callback
    outbox (as a receipt would), without an SMSC: only the sender is under test."""
    answers = await rig.send([entry(number(first + i), partner=partner_id, shortcode=f"SC{partner_id.upper()}") for i in range(count)])
    ids = [int(a["messageid"]) for a in answers]
    queued = await rig.store.write(callbacks.queue_callbacks, ids, int(time.time() * 1000), rig.settings.timezone)
    assert queued == count
    return [str(i) for i in ids]


def reported_ids(receiver: CallbackReceiver) -> set[str]:
    return {orjson.loads(body)["messageid"] for body, _, status in receiver.received if status == 200}


@contextlib.asynccontextmanager
async def sending(rig: Rig, **options) -> AsyncIterator[CallbackSender]:
    sender = CallbackSender(rig.store, poll_interval=0.1, **options)
    await sender.start()
    try:
        yield sender
    finally:
        await sender.stop()


async def two_partners(rig: Rig) -> None:
    for partner_id in ("pa", "pb"):
        rig.operator.partner(partner_id, credits=1_000_00, shortcode=f"SC{partner_id.upper()}")


@pytest.mark.parametrize(
    "bad_url",
    ["http://127.0.0.1:99999/dlr", "http://xn--/dlr", "http://127.0.0.1:9/dlr\r\nX-Injected: 1"],
    ids=["port-out-of-range", "bad-idna-label", "crlf"],
)
async def test_a_url_that_cannot_be_sent_to_fails_only_its_own_callbacks_and_fixing_it_fixes_the_queue(rig_factory, bad_url):
    rig: Rig = await rig_factory()
    await two_partners(rig)
    good_a, good_b = CallbackReceiver(), CallbackReceiver()
    await rig.store.set_callback("pa", good_a.url, "secret-a")
    # Stored through the store, as data from before URL checks (or an edit in the database) would be.
    await rig.store.set_callback("pb", bad_url, "secret-b")
    try:
        b_ids = await queue_reports(rig, "pb", 2, first=0)
        a_first = await queue_reports(rig, "pa", 2, first=100)
        async with sending(rig, retry_base_seconds=0.2, retry_max_seconds=0.5) as sender:
            await wait_for(lambda: reported_ids(good_a) >= set(a_first), timeout=20)
            await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM callbacks WHERE partner_id = 'pb' AND attempts >= 1") == [(2,)], timeout=20)
            # The sender lives on: reports queued later for the good partner still go out.
            a_later = await queue_reports(rig, "pa", 2, first=200)
            sender.wake()
            await wait_for(lambda: reported_ids(good_a) >= set(a_later), timeout=20)
            errors = rig.operator.sql("SELECT DISTINCT last_error FROM callbacks WHERE partner_id = 'pb'")
            assert all(error and "callback URL" in error for (error,) in errors), errors
            await rig.store.set_callback("pb", good_b.url, "secret-b")
            await wait_for(lambda: reported_ids(good_b) == set(b_ids), timeout=20)
            await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM callbacks WHERE delivered_at IS NULL") == [(0,)], timeout=20)
    finally:
        good_a.close()
        good_b.close()


async def test_a_hanging_receiver_never_delays_another_partners_callbacks(rig_factory):
    rig: Rig = await rig_factory()
    await two_partners(rig)
    release = threading.Event()
    hanging, prompt = CallbackReceiver(hold=release), CallbackReceiver()
    await rig.store.set_callback("pa", prompt.url, "secret-a")
    await rig.store.set_callback("pb", hanging.url, "secret-b")
    try:
        # More of pb's reports than the sender's whole concurrency.
        b_ids = await queue_reports(rig, "pb", 30, first=0)
        async with sending(rig, timeout=120, concurrency=20, per_partner_concurrency=4) as sender:
            await wait_for(lambda: hanging.active >= 1, timeout=20)
            a_ids = await queue_reports(rig, "pa", 5, first=100)
            sender.wake()
            await wait_for(lambda: reported_ids(prompt) == set(a_ids), timeout=20)
            assert not release.is_set() and hanging.received == []  # pb's receiver was holding all along
            assert hanging.max_active <= 4
            release.set()
            await wait_for(lambda: reported_ids(hanging) == set(b_ids), timeout=60)
    finally:
        release.set()
        hanging.close()
        prompt.close()


async def test_a_callback_past_its_limit_is_given_up_with_the_reason(rig_factory):
    rig: Rig = await rig_factory()
    await two_partners(rig)
    failing = CallbackReceiver(failures=1_000_000)
    await rig.store.set_callback("pb", failing.url, "secret-b")
    try:
        await queue_reports(rig, "pb", 1, first=0)
        async with sending(rig, retry_base_seconds=0.1, retry_max_seconds=0.2, give_up_seconds=1.0):
            await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM callbacks WHERE given_up_at IS NOT NULL") == [(1,)], timeout=20)
            attempts_when_given_up = len(failing.received)
            await asyncio.sleep(0.5)
        ((attempts, error, delivered),) = rig.operator.sql("SELECT attempts, last_error, delivered_at FROM callbacks")
        assert delivered is None and attempts == attempts_when_given_up == len(failing.received) >= 1
        assert error.startswith("given up after") and "HTTP 500" in error
        counts = await rig.store.read(queue.delivery_counts)
        assert counts["pending callbacks"] == 0 and counts["given-up callbacks"] == 1
    finally:
        failing.close()


async def test_callbacks_of_a_partner_whose_url_was_removed_are_given_up(rig_factory):
    rig: Rig = await rig_factory()
    await two_partners(rig)
    receiver = CallbackReceiver()
    await rig.store.set_callback("pb", receiver.url, "secret-b")
    try:
        await queue_reports(rig, "pb", 2, first=0)
        await rig.store.set_callback("pb", None, None)
        async with sending(rig):
            await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM callbacks WHERE given_up_at IS NOT NULL") == [(2,)], timeout=20)
        assert receiver.received == []
        errors = rig.operator.sql("SELECT DISTINCT last_error FROM callbacks")
        assert errors == [("given up: the partner has no callback URL any more",)]
    finally:
        receiver.close()


def documented_receiver() -> Callable[[bytes, bytes, Mapping[str, str]], bool]:
    """The receiver example of docs/api.md, run as written."""
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(def verify\(.*?)```", text, re.DOTALL)
    assert match is not None, "docs/api.md has no receiver example"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 6
    namespace: dict = {"hashlib": hashlib, "hmac": hmac, "time": time}
    exec(code, namespace)
    return namespace["verify"]


async def test_callbacks_carry_the_providers_format_and_a_timestamped_signature_the_documented_receiver_checks(rig_factory):
    rig: Rig = await rig_factory()
    await two_partners(rig)
    receiver = CallbackReceiver()
    secret = "the-partners-secret"
    await rig.store.set_callback("pa", receiver.url, secret)
    try:
        (message_id,) = await queue_reports(rig, "pa", 1, first=0)
        async with sending(rig):
            await wait_for(lambda: reported_ids(receiver) == {message_id}, timeout=20)
    finally:
        receiver.close()
    (body, _, _), headers = receiver.received[0], receiver.headers[0]
    report = orjson.loads(body)
    assert re.fullmatch(r"[0-9]+s", report["timeTaken"]), report
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", report["timestamp"]), report
    stamp = int(headers["X-Smsgw-Timestamp"])
    assert abs(time.time() - stamp) < 60
    verify = documented_receiver()
    key = secret.encode()
    assert verify(key, body, headers)
    assert not verify(b"another-secret", body, headers)
    assert not verify(key, body.replace(b"pa", b"pb") + b" ", headers)
    assert not verify(key, body, {**headers, "X-Smsgw-Timestamp": str(stamp + 1)})
    # The same callback as the gateway signed it ten minutes ago, played again now.
    replayed = {**headers, "X-Smsgw-Timestamp": str(stamp - 600), "X-Smsgw-Signature-V2": signature_v2(secret, stamp - 600, body)}
    assert not verify(key, body, replayed)


async def test_a_partner_not_allowed_private_destinations_gets_no_callback_to_loopback(rig_factory):
    rig: Rig = await rig_factory()
    rig.operator.partner("pa", credits=1_000_00, shortcode="SCPA")  # allowed: the test's receivers are on loopback
    rig.operator.partner("pb", credits=1_000_00, shortcode="SCPB", allow_private=False)
    allowed, refused = CallbackReceiver(), CallbackReceiver()
    await rig.store.set_callback("pa", allowed.url, "secret-a")
    # Stored as old data would be (the CLI refuses it): a name that resolves to loopback.
    await rig.store.set_callback("pb", refused.url.replace("127.0.0.1", "localhost"), "secret-b")
    try:
        b_ids = await queue_reports(rig, "pb", 2, first=0)
        a_ids = await queue_reports(rig, "pa", 2, first=10)
        async with sending(rig, retry_base_seconds=30):
            await wait_for(lambda: reported_ids(allowed) == set(a_ids), timeout=20)
            await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM callbacks WHERE partner_id = 'pb' AND attempts > 0") == [(2,)], timeout=20)
        assert refused.received == [] and len(b_ids) == 2
        errors = {error for (error,) in rig.operator.sql("SELECT last_error FROM callbacks WHERE partner_id = 'pb'")}
        assert len(errors) == 1 and "localhost (127.0.0.1) is not a public address" in errors.pop()
    finally:
        allowed.close()
        refused.close()


@pytest.mark.parametrize("outbox", ["callbacks", "inbound"])
async def test_a_stop_that_meets_a_wake_up_still_stops_the_sender(rig_factory, outbox):
    """A stop in the same turn of the loop as a wake-up (a POST that just ended, a message
    just accepted). asyncio.wait_for of Python 3.11 swallows a cancellation that arrives as the
    awaited event is set: the sender then ran on, retrying, and stop() never returned."""
    rig: Rig = await rig_factory()
    sender = CallbackSender(rig.store, poll_interval=30) if outbox == "callbacks" else InboundForwarder(rig.store, rig.settings, poll_interval=30)
    await sender.start()
    await asyncio.sleep(0.5)  # its first look at the empty outbox is over: it waits to be woken
    sender.wake()
    async with asyncio.timeout(10) as deadline:
        await sender.stop()
    assert not deadline.expired(), "stop() returned only when it was cancelled itself"
