"""`smsgw send`, `smsgw balance`, `smsgw dlr`, run as real commands against a real gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from smsgw.client import Client

from ..helpers import DEFAULT_KEY, smsgw_command
from .conftest import FORWARD, HOLD, PARTNER, SHORTCODE, campaign_csv, kenyan_number, read_results, smsgw, smsgw_in_process, write_csv

TEMPLATE = "Dear {name}, your statement is ready."


def send_args(csv_path: Path, *extra: str) -> list[str]:
    return ["send", "--csv", str(csv_path), "--message", TEMPLATE, *extra]


def stored_ids_by_line(gw) -> dict[str, str]:
    """Message id of every stored message, by the clientsmsid the CLI gave it (its line)."""
    return {clientsmsid: str(message_id) for message_id, clientsmsid in gw.operator.sql("SELECT id, clientsmsid FROM messages")}


def assert_results_match_store(results: list[dict[str, str]], gw, expected_lines: range) -> None:
    lines = [row["line"] for row in results]
    assert sorted(lines, key=int) == [str(n) for n in expected_lines]  # each line exactly once
    stored = stored_ids_by_line(gw)
    assert {row["line"]: row["messageid"] for row in results} == stored
    assert {row["code"] for row in results} == {"200"}


def test_a_2500_row_csv_goes_out_as_three_requests(gw, tmp_path):
    csv_path = campaign_csv(tmp_path / "campaign.csv", 2500)
    env = dict(os.environ)  # the contract's form: everything as flags
    done = smsgw(
        [
            "send",
            "--url",
            gw.url,
            "--partner-id",
            PARTNER,
            "--api-key",
            DEFAULT_KEY,
            "--shortcode",
            SHORTCODE,
            "--csv",
            str(csv_path),
            "--message",
            TEMPLATE,
        ],
        env,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(charge["message_count"] for charge in gw.charges()) == [500, 1000, 1000]
    assert gw.operator.sql("SELECT count(*), count(DISTINCT batch_id) FROM messages")[0] == (2500, 3)
    results = read_results(tmp_path / "campaign.results.csv")
    assert len(results) == 2500
    assert_results_match_store(results, gw, range(2, 2502))
    first = results[0]
    assert (first["name"], first["mobile"], first["description"], first["networkid"]) == ("Customer 0", "0710000000", "Success", "1")
    texts = {text for (text,) in gw.operator.sql("SELECT text FROM messages WHERE clientsmsid = '2'")}
    assert texts == {"Dear Customer 0, your statement is ready."}
    assert "accepted (200)" in done.stdout and "2,500" in done.stdout and "3 requests" in done.stdout
    assert DEFAULT_KEY not in done.stdout + done.stderr


def test_bad_rows_are_reported_by_line_and_the_good_rows_go_out(gw, tmp_path):
    rows = [
        ["Alice", kenyan_number(1), "10"],  # line 2
        ["Bob", "12345", "20"],  # line 3: the gateway refuses the number (1003)
        ["", kenyan_number(3), "30"],  # line 4: {name} is empty
        ["Dan", "", "40"],  # line 5: no number
        ["Eve", "0712 CALL ME", "50"],  # line 6: letters
        ["Fay", kenyan_number(6), ""],  # line 7: {amount} is empty
        ["Gus", kenyan_number(7), "70"],  # line 8
    ]
    csv_path = write_csv(tmp_path / "bad.csv", ["name", "mobile", "amount"], rows)
    done = smsgw(["send", "--csv", str(csv_path), "--message", "Dear {name}, you owe {amount}."], gw.env(), tmp_path)
    assert done.returncode == 0, done.stderr
    for expected in (
        "line 3: 1003 Invalid mobile number",
        "line 4: missing field 'name'",
        "line 5: missing number",
        "line 6: 1003 Invalid mobile number",
        "line 7: missing field 'amount'",
    ):
        assert expected in done.stdout
    assert sorted(stored_ids_by_line(gw)) == ["2", "8"]
    by_line = {row["line"]: row for row in read_results(tmp_path / "bad.results.csv")}
    assert sorted(by_line, key=int) == ["2", "3", "4", "5", "6", "7", "8"]
    assert (by_line["2"]["code"], by_line["8"]["code"], by_line["3"]["code"]) == ("200", "200", "1003")
    assert by_line["4"]["code"] == "" and by_line["4"]["description"].startswith("not sent: missing field 'name'")
    assert {text for (text,) in gw.operator.sql("SELECT text FROM messages")} == {"Dear Alice, you owe 10.", "Dear Gus, you owe 70."}


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_resume_after_sigkill_stores_every_row_exactly_once(gw, proxy_for, tmp_path):
    # The first three requests are answered; the next three reach the gateway, which commits
    # them, but their answers are held back: the process is killed with 600 rows recorded
    # and 600 more stored by the gateway but never recorded.
    proxy = proxy_for(plan=lambda n, path: FORWARD if n <= 3 else HOLD)
    csv_path = campaign_csv(tmp_path / "big.csv", 3000)
    results_path = tmp_path / "big.results.csv"
    options = ["--batch-size", "200", "--concurrency", "3", "--no-progress"]
    process = subprocess.Popen(
        smsgw_command() + send_args(csv_path, *options), env=gw.env(SMSGW_URL=proxy.url), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not (proxy.forwarded >= 6 and lines_in(results_path) >= 1 + 600):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the first run did not reach the planned state"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    proxy.released.set()
    assert process.returncode == -signal.SIGKILL
    assert len(read_results(results_path)) == 600
    assert gw.message_count() == 1200

    resumed = smsgw(send_args(csv_path, *options, "--resume"), gw.env(), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    copies = gw.copies_per_clientsmsid()
    assert len(copies) == 3000 and set(copies.values()) == {1}
    # The three requests whose answers were lost were replayed by the gateway, not charged again.
    assert len(gw.charges()) == 15
    assert_results_match_store(read_results(results_path), gw, range(2, 3002))
    assert "600 of 3,000 rows already done" in resumed.stderr
    assert "done by an earlier run, skipped" in resumed.stdout


def test_ctrl_c_records_the_requests_in_flight_then_stops(gw, proxy_for, tmp_path):
    proxy = proxy_for(plan=lambda n, path: FORWARD if n <= 3 else HOLD)
    csv_path = campaign_csv(tmp_path / "stop.csv", 3000)
    results_path = tmp_path / "stop.results.csv"
    options = ["--batch-size", "200", "--concurrency", "3"]
    process = subprocess.Popen(
        smsgw_command() + send_args(csv_path, *options),
        env=gw.env(SMSGW_URL=proxy.url),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr_lines: list[str] = []
    stopping = threading.Event()

    def read_stderr() -> None:
        for line in process.stderr:
            stderr_lines.append(line)
            if "stopping" in line:
                stopping.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not (proxy.forwarded >= 6 and lines_in(results_path) >= 1 + 600):
            assert process.poll() is None, stderr_lines
            assert time.monotonic() < deadline, "the run did not reach the planned state"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        assert stopping.wait(timeout=30), stderr_lines
        proxy.released.set()  # the three held answers now arrive and are recorded
        process.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(stderr_lines)
    assert process.returncode == 1, stderr
    assert "1,800 rows not sent" in stderr and "--resume" in stderr
    assert len(read_results(results_path)) == 1200 and gw.message_count() == 1200
    assert len(proxy.sendbulk_requests()) == 6  # nothing new started after Ctrl-C
    resumed = smsgw(send_args(csv_path, *options, "--resume"), gw.env(), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(gw.charges()) == 15
    assert_results_match_store(read_results(results_path), gw, range(2, 3002))


def test_resume_after_a_results_file_cut_mid_row(gw, proxy_for, tmp_path):
    # A kill during a write leaves a partial last record; resume drops it and re-sends the
    # whole block it belonged to, byte for byte, so the gateway replays it.
    csv_path = campaign_csv(tmp_path / "torn.csv", 1000)
    results_path = tmp_path / "torn.results.csv"
    options = ["--batch-size", "200", "--concurrency", "2"]
    first = smsgw(send_args(csv_path, *options), gw.env(), tmp_path)
    assert first.returncode == 0, first.stderr
    content = results_path.read_bytes()
    cut = content.index(b"\n450,") + 6
    results_path.write_bytes(content[:cut])
    assert len(gw.charges()) == 5

    proxy = proxy_for()
    resumed = smsgw(send_args(csv_path, *options, "--resume"), gw.env(SMSGW_URL=proxy.url), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # Blocks 3 (lines 402-601, 48 of them recorded), 4 and 5 went again, whole.
    assert len(proxy.sendbulk_requests()) == 3
    assert len(gw.charges()) == 5
    copies = gw.copies_per_clientsmsid()
    assert len(copies) == 1000 and set(copies.values()) == {1}
    assert_results_match_store(read_results(results_path), gw, range(2, 1002))


def test_rows_refused_for_low_credit_are_sent_by_resume_after_a_top_up(gw, tmp_path):
    gw.operator.sql("UPDATE partners SET balance = 25000 WHERE id = 'p1'")  # 250 units
    csv_path = campaign_csv(tmp_path / "credit.csv", 500)
    options = ["--batch-size", "100", "--concurrency", "1"]
    first = smsgw(send_args(csv_path, *options), gw.env(), tmp_path)
    assert first.returncode == 1
    assert "refused 1004 Low bulk credits" in first.stdout and "--resume" in first.stderr
    assert gw.message_count() == 200
    gw.operator.sql("UPDATE partners SET balance = balance + 100000 WHERE id = 'p1'")
    resumed = smsgw(send_args(csv_path, *options, "--resume"), gw.env(), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    copies = gw.copies_per_clientsmsid()
    assert len(copies) == 500 and set(copies.values()) == {1}
    latest = {row["line"]: row["code"] for row in read_results(tmp_path / "credit.results.csv")}
    assert len(latest) == 500 and set(latest.values()) == {"200"}


def test_an_existing_results_file_needs_resume(gw, tmp_path):
    csv_path = campaign_csv(tmp_path / "again.csv", 10)
    assert smsgw_in_process(send_args(csv_path), gw.client_env()).returncode == 0
    again = smsgw_in_process(send_args(csv_path), gw.client_env())
    assert again.returncode == 2 and "add --resume" in again.stderr
    nothing_left = smsgw_in_process(send_args(csv_path, "--resume"), gw.client_env())
    assert nothing_left.returncode == 0 and "done by an earlier run, skipped" in nothing_left.stdout
    other_blocks = smsgw_in_process(send_args(csv_path, "--resume", "--batch-size", "5"), gw.client_env())
    assert other_blocks.returncode == 2 and "other options than the earlier run (batch_size)" in other_blocks.stderr
    assert json.loads((tmp_path / "again.results.csv.run.json").read_text())["options"]["batch_size"] == 1000
    assert gw.message_count() == 10


def test_usage_errors_send_nothing(gw, tmp_path):
    csv_path = campaign_csv(tmp_path / "c.csv", 3)
    unknown_field = smsgw_in_process(["send", "--csv", str(csv_path), "--message", "Dear {surname}"], gw.client_env())
    assert unknown_field.returncode == 2 and "no such column" in unknown_field.stderr
    no_message = smsgw_in_process(["send", "--csv", str(csv_path)], gw.client_env())
    assert no_message.returncode == 2 and "--message" in no_message.stderr
    no_url = smsgw_in_process(send_args(csv_path), gw.client_env(SMSGW_URL=None))
    assert no_url.returncode == 2 and "--url (or SMSGW_URL)" in no_url.stderr
    same_file = smsgw_in_process(send_args(csv_path, "--results", str(csv_path)), gw.client_env())
    assert same_file.returncode == 2 and "must not be the campaign CSV" in same_file.stderr
    wrong_key = smsgw_in_process(send_args(csv_path), gw.client_env(SMSGW_API_KEY="wrong-key-0000000000"))
    assert wrong_key.returncode == 1 and "1006 Invalid credentials" in wrong_key.stderr and "not sent (run stopped)" in wrong_key.stdout
    assert "wrong-key-0000000000" not in wrong_key.stdout + wrong_key.stderr
    assert gw.message_count() == 0


def test_dry_run_estimates_per_network_and_sends_nothing(gw, tmp_path):
    rows = [
        ["Ann", "0712345678", "Short"],  # Safaricom, 1 part
        ["Ben", "0733123456", "x" * 200],  # Airtel, 2 GSM-7 parts
        ["Cat", "0771234567", "Habari ✓"],  # Telkom, 1 UCS-2 part
        ["Dee", "0712345679", "y" * 1200],  # 8 parts: over the limit
        ["Eli", "12345", "Short"],  # not a mobile number
    ]
    csv_path = write_csv(tmp_path / "dry.csv", ["name", "mobile", "message"], rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}  # no connection needed
    done = smsgw(["send", "--csv", str(csv_path), "--dry-run"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if "│" in line]
    cells = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:5]] for line in table}
    assert cells["1 Safaricom"] == ["1", "1", "1.00"]
    assert cells["2 Airtel"] == ["1", "2", "2.00"]
    assert cells["3 Telkom"] == ["1", "1", "1.00"]
    assert cells["total"] == ["3", "4", "4.00"]
    assert "line 5: message needs 8 parts" in done.stdout and "line 6: invalid mobile number" in done.stdout
    assert "estimate" in done.stdout and "2 GSM-7, 1 UCS-2" in done.stdout
    assert "opt-out" in done.stdout and "1011" in done.stdout  # what only the gateway knows is named, not guessed
    assert not (tmp_path / "dry.results.csv").exists()
    assert gw.message_count() == 0


def test_balance_and_dlr_commands(gw):
    with Client(gw.url, PARTNER, DEFAULT_KEY, shortcode=SHORTCODE) as sms:
        message_id = sms.send_sms(kenyan_number(1), "report me").message_id

    balance = smsgw(["balance"], gw.env(), Path.cwd())  # once as a real process
    assert balance.returncode == 0 and balance.stdout.strip() == "partner p1: credit 99999.00"
    as_json = json.loads(smsgw_in_process(["balance", "--json"], gw.client_env()).stdout)
    assert as_json == {"partner_id": "p1", "credit": "99999.00"}

    report = smsgw_in_process(["dlr", message_id], gw.client_env())
    assert report.returncode == 0 and report.stdout.startswith(f"message {message_id}: Scheduled (status 1)")
    assert json.loads(smsgw_in_process(["dlr", message_id, "--json"], gw.client_env()).stdout)["status"] == 1

    unknown = smsgw_in_process(["dlr", "99999999"], gw.client_env())
    assert unknown.returncode == 1 and "1008 No Delivery Report" in unknown.stderr
    flags_win = smsgw_in_process(["balance", "--api-key", "wrong-key-0000000000"], gw.client_env())
    assert flags_win.returncode == 1 and "1006 Invalid credentials" in flags_win.stderr
    assert "wrong-key-0000000000" not in flags_win.stdout + flags_win.stderr
    missing = smsgw_in_process(["balance"], gw.client_env(SMSGW_PARTNER_ID=None))
    assert missing.returncode == 2 and "--partner-id (or SMSGW_PARTNER_ID)" in missing.stderr
