"""SIGKILL of `smsgw serve --smpp-port` during an SMPP load: every submit_sm answered with an
id is stored and charged once; what was not stored was not charged."""

from __future__ import annotations

import signal
import threading

from ..helpers import Operator, free_port, make_settings, start_serve
from ..test_durability import _assert_charged_once
from .helpers import Esme, add_account

CREDIT = 1_000_000_00
WINDOW = 10


def test_every_answered_submit_sm_survives_sigkill(tmp_path, database_url):
    settings = make_settings(database_url)
    operator = Operator(settings)
    operator.partner("p1", credits=CREDIT, shortcode="SC1")
    add_account(operator, "p1", "p1_smpp", "secret1", window=WINDOW)
    port, smpp_port = free_port(), free_port()
    server = start_serve({"SMSGW_DATABASE_URL": str(settings.database_url.raw)}, port, tmp_path, extra=["--smpp-port", str(smpp_port)])
    esme = Esme(smpp_port, "p1_smpp", "secret1", mode="transmitter")
    killed = threading.Event()
    try:
        assert esme.bind() == 0
        sent = 0
        while sent < 20_000:
            if not killed.is_set() and len(esme.answers) >= 300:
                # Killed with a full window of submit_sm in flight.
                server.send_signal(signal.SIGKILL)
                killed.set()
            try:
                while sent - len(esme.answers) >= WINDOW:
                    esme.read()
                esme.submit(f"2547{sent:08d}", f"durable {sent}".encode())
                sent += 1
            except Exception:  # the connection died with the process
                break
    finally:
        esme.close()
        server.kill()
        server.wait(timeout=10)
    assert killed.is_set()
    answered = {int(answer.message_id) for answer in esme.answers.values() if answer.status == 0}
    assert len(answered) >= 300
    stored = {row[0] for row in operator.sql("SELECT id FROM messages")}
    assert answered <= stored
    # Stored but never answered: only what was in the window when the process died.
    assert len(stored - answered) <= WINDOW
    _assert_charged_once(operator, CREDIT)
    assert {row[0] for row in operator.sql("SELECT message_id FROM smpp_receipts")} == stored
