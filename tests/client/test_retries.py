"""Retries never send twice: answers lost after the gateway committed, a gateway that is
briefly unable to write, and connections that break or hang."""

from __future__ import annotations

from smsgw.client import Client, RetryEvent, RetryPolicy, TransportError, TryAgainLater

from ..helpers import DEFAULT_KEY
from .conftest import DROP, FAKE_4090, FORWARD, PARTNER, REFUSE_4090, SHORTCODE, STALL, SqliteWriteLock, kenyan_number

FAST = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05)


def messages(count: int):
    return [{"mobile": kenyan_number(i), "message": f"retry {i}", "clientsmsid": i} for i in range(count)]


def assert_each_message_stored_once(gw, count: int) -> None:
    copies = gw.copies_per_clientsmsid()
    assert len(copies) == count and set(copies.values()) == {1}
    assert gw.message_count() == count


def test_a_4090_after_the_gateway_committed_is_retried_without_a_duplicate(gw, proxy_for):
    # The first sendbulk reaches the gateway (which charges and stores it) but the client is
    # told 4090; the retry carries the same Idempotency-Key and gets the first answer back.
    proxy = proxy_for(plan=lambda n, path: FAKE_4090 if n == 1 else FORWARD)
    with Client(proxy.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE, retry=FAST) as sms:
        results = sms.send_bulk(messages(300))
    assert [r.code for r in results] == [200] * 300
    stored_ids = {str(row[0]) for row in gw.operator.sql("SELECT id FROM messages")}
    assert {r.message_id for r in results} == stored_ids
    assert_each_message_stored_once(gw, 300)
    assert len(gw.charges()) == 1
    first, retry = proxy.sendbulk_requests()
    assert first.idempotency_key == retry.idempotency_key and first.idempotency_key


def test_a_connection_dropped_after_the_commit_is_retried_without_a_duplicate(gw, proxy_for):
    proxy = proxy_for(plan=lambda n, path: DROP if n in (1, 2) else FORWARD)
    retries: list[RetryEvent] = []
    with Client(proxy.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE, retry=FAST, on_retry=retries.append) as sms:
        results = sms.send_bulk(messages(50))
    assert all(r.ok for r in results)
    assert [type(event.error) for event in retries] == [TransportError, TransportError]
    assert_each_message_stored_once(gw, 50)
    assert len({seen.idempotency_key for seen in proxy.sendbulk_requests()}) == 1


def test_a_timeout_after_the_commit_is_retried_without_a_duplicate(gw, proxy_for):
    # The proxy keeps the first answer until the retry arrives: the client's read timeout
    # fires while the gateway has already committed.
    proxy = proxy_for(plan=lambda n, path: STALL if n == 1 else FORWARD)
    retries: list[RetryEvent] = []
    with Client(proxy.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE, timeout=1.0, retry=FAST, on_retry=retries.append) as sms:
        results = sms.send_bulk(messages(20))
    assert all(r.ok for r in results)
    assert len(retries) == 1 and "Timeout" in retries[0].error.description
    assert_each_message_stored_once(gw, 20)
    assert len(gw.charges()) == 1


def test_the_gateway_answering_4090_while_its_store_is_locked_then_recovering(start_gateway):
    # The gateway waits 200 ms for the write lock that another connection holds, answers
    # 4090 (nothing accepted); the lock is released when the client schedules its retry.
    gw = start_gateway(SMSGW_LOCK_TIMEOUT_MS="200")
    lock = SqliteWriteLock(gw.sqlite_path)
    retries: list[RetryEvent] = []

    def release_on_retry(event: RetryEvent) -> None:
        retries.append(event)
        lock.release()

    try:
        with Client(gw.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE, retry=FAST, on_retry=release_on_retry) as sms:
            results = sms.send_bulk(messages(100))
    finally:
        lock.release()
    assert all(r.ok for r in results)
    assert retries and isinstance(retries[0].error, TryAgainLater) and retries[0].error.code == 4090
    assert_each_message_stored_once(gw, 100)


def test_retries_are_bounded(gw, proxy_for):
    proxy = proxy_for(plan=lambda n, path: REFUSE_4090)
    with Client(proxy.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE, retry=RetryPolicy(max_attempts=4, base_delay=0.01)) as sms:
        try:
            sms.send_bulk(messages(5))
        except TryAgainLater as exc:
            attempts = exc.attempts
        else:
            raise AssertionError("4090 on every attempt must end in TryAgainLater")
    assert attempts == 4 and len(proxy.sendbulk_requests()) == 4
    assert gw.message_count() == 0


def test_a_refused_connection_is_a_transport_error_after_the_retries():
    with Client("http://127.0.0.1:9", PARTNER, DEFAULT_KEY, shortcode=SHORTCODE, retry=RetryPolicy(max_attempts=2, base_delay=0.01)) as sms:
        try:
            sms.balance()
        except TransportError as exc:
            assert exc.code is None and exc.attempts == 2 and "ConnectError" in exc.description
        else:
            raise AssertionError("nothing listens on port 9")
