"""Delivery report callbacks over real HTTP, and receipt matching in the store."""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from smsgw.domain.states import DeliveryState
from smsgw.store import outcomes, queue, receipts
from smsgw.store.outcomes import Submitted
from smsgw.store.receipts import IncomingReceipt

from ..helpers import entry, wait_for
from .conftest import Rig, number


class CallbackReceiver:
    """A partner's HTTP endpoint on loopback that fails the first `failures` POSTs. With
    `hold`, each POST waits (at most `hold_limit` seconds) for that event before it is
    answered: a receiver that hangs. `active`/`max_active` count POSTs being answered."""

    def __init__(self, failures: int = 0, hold: threading.Event | None = None, hold_limit: float = 60.0) -> None:
        self.failures = failures
        self.received: list[tuple[bytes, str | None, int]] = []
        self.headers: list[dict[str, str]] = []  # of each POST in `received`
        self.active = 0
        self.max_active = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    receiver.active += 1
                    receiver.max_active = max(receiver.max_active, receiver.active)
                try:
                    if hold is not None:
                        hold.wait(hold_limit)
                    with lock:
                        status = 500 if len(receiver.received) < receiver.failures else 200
                        receiver.received.append((body, self.headers.get("X-Smsgw-Signature"), status))
                        receiver.headers.append(dict(self.headers.items()))
                finally:
                    with lock:
                        receiver.active -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dlr"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


async def test_final_reports_are_posted_signed_and_retried_until_2xx(rig_factory):
    rig: Rig = await rig_factory(env={"SMSGW_CALLBACK_RETRY_BASE_SECONDS": "1"})
    receiver = CallbackReceiver(failures=2)
    secret = "s3cret-for-the-test"
    await rig.store.set_callback("p1", receiver.url, secret)
    try:
        async with rig.delivering():
            (answer,) = await rig.send([entry(number(5), clientsmsid="abc-5")])
            await wait_for(lambda: any(status == 200 for _, _, status in receiver.received), timeout=30)
    finally:
        receiver.close()
    assert [status for _, _, status in receiver.received] == [500, 500, 200]
    body, signature, _ = receiver.received[-1]
    assert signature == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    report = orjson.loads(body)
    assert report["messageid"] == answer["messageid"]
    assert report["clientsmsid"] == "abc-5"
    assert report["mobile"] == answer["mobile"]
    assert report["description"] == "DeliveredToTerminal" and report["status"] == 3
    assert re.fullmatch(r"[0-9]+s", report["timeTaken"]) and re.fullmatch(
        r"20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", report["timestamp"]
    )
    assert all(b == body for b, _, _ in receiver.received)  # every attempt carries the same report
    row = rig.operator.sql("SELECT attempts, delivered_at IS NOT NULL FROM callbacks")
    assert row == [(3, 1)]


async def test_no_callback_without_a_url(rig: Rig):
    async with rig.delivering():
        await rig.send([entry(number(6))])
        await wait_for(lambda: rig.operator.sql("SELECT count(*) FROM messages WHERE state = 3") == [(1,)])
    assert rig.operator.sql("SELECT count(*) FROM callbacks") == [(0,)]


async def test_unmatched_receipts_are_kept_and_matched_when_the_id_is_recorded(rig: Rig):
    (answer,) = await rig.send([entry(number(7))])
    message_id = int(answer["messageid"])
    now = int(time.time() * 1000)
    early = IncomingReceipt("carrier", "00002587", ["s:00002587", "n:2587", "n:9607"], int(DeliveryState.DELIVERED), "DELIVRD", None, None)
    stray = IncomingReceipt("carrier", "ffff", ["s:ffff", "n:65535"], int(DeliveryState.DELIVERED), "DELIVRD", None, None)
    outcome = await rig.store.write(receipts.apply_receipts, [early, stray], now)
    assert (outcome.matched, outcome.unmatched) == (0, 2)
    # The submit_sm_resp (hex 0A1B = decimal 2587) is recorded afterwards.
    await rig.store.write(queue.claim_due, "me", now, 10, 60_000, None)
    again = await rig.store.write(outcomes.record_submitted, [Submitted(message_id, "carrier", ["0A1B"], [["s:0a1b", "n:2587"]])], now)
    assert again.matched == 1 and again.finished == [message_id]
    assert (await rig.states())[message_id] == int(DeliveryState.DELIVERED)
    # The stray one stays, counted, never dropped.
    counts = await rig.store.read(queue.delivery_counts)
    assert counts["unmatched receipts"] == 1


async def test_a_long_message_takes_one_status_from_all_its_parts(rig: Rig):
    (answer,) = await rig.send([entry(number(8), "x" * 400)])  # three parts
    message_id = int(answer["messageid"])
    now = int(time.time() * 1000)
    await rig.store.write(queue.claim_due, "me", now, 10, 60_000, None)
    ids = ["A1", "A2", "A3"]
    await rig.store.write(outcomes.record_submitted, [Submitted(message_id, "carrier", ids, [[f"s:{i.lower()}"] for i in ids])], now)

    def receipt(smsc_id: str, state: DeliveryState, stat: str) -> IncomingReceipt:
        return IncomingReceipt("carrier", smsc_id, [f"s:{smsc_id.lower()}"], int(state), stat, None, None)

    first = await rig.store.write(
        receipts.apply_receipts,
        [receipt("A1", DeliveryState.DELIVERED, "DELIVRD"), receipt("A3", DeliveryState.DELIVERED, "DELIVRD")],
        now,
    )
    assert first.matched == 2 and first.finished == []
    assert (await rig.states())[message_id] == int(DeliveryState.SENT_TO_NETWORK)
    last = await rig.store.write(receipts.apply_receipts, [receipt("A2", DeliveryState.DELIVERY_IMPOSSIBLE, "UNDELIV")], now)
    assert last.finished == [message_id]
    assert (await rig.states())[message_id] == int(DeliveryState.DELIVERY_IMPOSSIBLE)
