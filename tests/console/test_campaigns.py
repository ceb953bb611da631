"""Portal campaigns over real HTTP (no browser): the preview's figures, the one-time
confirmation, the report against the store, what another partner and a forged form get, inert
payloads, the upload's limits, XLSX; and one-time form ids on the console's forms."""

from __future__ import annotations

import csv
import io
import re
import threading
import time

import httpx
import pytest

from smsgw.console.campaign_pages import CAMPAIGN_BATCH, MAX_ROWS, MAX_UPLOAD_BYTES, id_ranges
from smsgw.domain.states import DeliveryState

from ..dispatch.conftest import number
from .conftest import OPERATOR, OPERATOR_PASSWORD, PARTNER_PASSWORDS, form_token, signed_in

XSS = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'


def portal(console, partner_id: str = "acme"):
    return signed_in(console.url, "portal", partner_id, PARTNER_PASSWORDS[partner_id])


def csv_bytes(rows: list[list[str]], header: tuple[str, ...] = ("mobile", "name")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def upload(client: httpx.Client, data: bytes, template: str = "Dear {name}, hello", name: str = "people.csv", shortcode: str = "ACME", **extra: str):
    """POSTs the upload form as the page gives it; the answer (the preview page)."""
    page = client.get("/portal/campaigns/new").text
    fields = {"csrf": form_token(page), "template": template, "shortcode": shortcode, **extra}
    form_id = re.search(r'name="form_id" value="([^"]+)"', page)
    if form_id and "form_id" not in extra:
        fields["form_id"] = form_id.group(1)
    return client.post("/portal/campaigns", data=fields, files={"file": (name, data)})


def figure(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert found is not None, f"no #{element_id} in the page"
    return found.group(1)


def confirm_form(html: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'action="(/portal/campaigns/\d+/confirm)"', html)
    token = re.search(r'name="token" value="([^"]+)"', html)
    assert action and token, html
    return action.group(1), {"csrf": form_token(html), "token": token.group(1)}


def wait_accepted(client: httpx.Client, campaign_id: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        page = client.get(f"/portal/campaigns/{campaign_id}").text
        if figure(page, "campaign-status").startswith(("accepted", "stopped")):
            return page
        assert time.monotonic() < deadline, page
        time.sleep(0.2)


def campaign_ids(console) -> list[int]:
    return [row[0] for row in console.gateway.operator.sql("SELECT id FROM campaigns ORDER BY id")]


@pytest.mark.parametrize(
    ("responses", "expected"),
    [
        ([], []),
        ([{"response-code": 200, "messageid": "10"}], [(10, 10)]),
        ([{"response-code": 200, "messageid": str(i)} for i in (10, 11, 12)], [(10, 12)]),
        ([{"response-code": 200, "messageid": "10"}, {"response-code": 1003}, {"response-code": 200, "messageid": "12"}], [(10, 12)]),
        (
            [{"response-code": 200, "messageid": "10"}, {"response-code": 200, "messageid": "500"}, {"response-code": 200, "messageid": "501"}],
            [(10, 10), (500, 501)],
        ),
        ([{"response-code": 1003}, {"response-code": 1004}], []),
    ],
    ids=["none", "one", "a-run", "a-refused-entry-inside", "a-new-id-block", "all-refused"],
)
def test_id_ranges_cover_exactly_the_batchs_ids(responses, expected):
    assert id_ranges(responses) == expected


def test_the_preview_counts_rows_by_reason_and_costs_per_network_and_sends_nothing(console):
    console.gateway.operator.sql(
        "INSERT INTO optouts (partner_id, shortcode, msisdn, source, created_at) VALUES ('acme', 'ACME', '254712000300', 'operator', 0)"
    )
    rows = [
        ["0712000100", "Ann"],  # Safaricom
        ["0712000200", "Bob"],
        ["0733000100", "Cy"],  # Airtel
        ["not-a-number", "Dee"],  # bad number
        ["0747000000", "Eve"],  # a Kenyan number of no network in the table
        ["0712000300", "Fay"],  # opted out
        ["0712000400", ""],  # {name} empty: empty text
        ["", "Gus"],  # no number
    ]
    with portal(console) as client:
        page = upload(client, csv_bytes(rows), template="Dear {name}, " + "x" * 160)  # two parts each
        assert page.status_code == 200, page.text
        assert (figure(page.text, "rows"), figure(page.text, "valid"), figure(page.text, "invalid")) == ("8", "3", "5")
        reasons = dict(re.findall(r'<tr data-reason="([^"]+)"><td>[^<]*</td><td class="num">(\d+)</td>', page.text))
        assert reasons == {"bad number": "2", "unknown network": "1", "opted out": "1", "empty text": "1"}
        networks = re.findall(
            r'<tr data-network="(\d+)">.*?<td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">([\d.]+)</td>', page.text
        )
        assert networks == [("1", "2", "4", "4.00"), ("2", "1", "2", "2.00")]
        assert figure(page.text, "cost") == "6.00"
        assert figure(page.text, "balance") == "1000.00"
        assert "Dear Ann, xxx" in page.text
    assert console.gateway.operator.sql("SELECT count(*) FROM messages") == [(0,)]
    assert console.gateway.operator.balance("acme") == 1000_00


def test_a_confirmation_sent_twice_accepts_the_campaign_once_in_batches(console):
    count = CAMPAIGN_BATCH + 500
    rows = [[number(i), f"n{i}"] for i in range(count)]
    console.gateway.operator.sql("UPDATE partners SET balance = 2000_00 WHERE id = 'acme'".replace("_", ""))
    with portal(console) as client:
        preview = upload(client, csv_bytes(rows))
        assert figure(preview.text, "cost") == f"{count}.00"
        action, fields = confirm_form(preview.text)
        answers = [client.post(action, data=fields) for _ in range(2)]  # a double click
        assert [a.status_code for a in answers] == [303, 303]
        campaign_id = int(action.split("/")[3])
        page = wait_accepted(client, campaign_id)
        assert figure(page, "accepted") == str(count)
        # The back button and a third POST change nothing either.
        assert client.post(action, data=fields).status_code == 303
    operator = console.gateway.operator
    assert operator.sql("SELECT count(*), count(DISTINCT msisdn) FROM messages") == [(count, count)]
    charges = operator.sql("SELECT amount FROM ledger WHERE partner_id = 'acme' AND kind <> 'topup' ORDER BY id")
    assert [amount for (amount,) in charges] == [-CAMPAIGN_BATCH * 100, -500 * 100]  # one charge per batch of rows
    assert operator.balance("acme") == 2000_00 - count * 100
    assert operator.sql("SELECT status, upload IS NULL FROM campaigns") == [("accepted", 1)]


def test_the_delivery_report_and_the_breakdown_match_the_store(console):
    rows = [[number(i), f"n{i}"] for i in range(30)] + [["0747000000", "x"]]
    before = console.send("acme", "0712999900", "not of the campaign")
    with portal(console) as client:
        action, fields = confirm_form(upload(client, csv_bytes(rows)).text)
        client.post(action, data=fields)
        campaign_id = int(action.split("/")[3])
        wait_accepted(client, campaign_id)
        after = console.send("acme", "0712999800", "not of the campaign either")
        operator = console.gateway.operator
        operator.sql(f"UPDATE messages SET state = {int(DeliveryState.DELIVERED)}, done_at = 1 WHERE msisdn = '254{number(0)[1:]}'")
        page = client.get(f"/portal/campaigns/{campaign_id}").text
        report = client.get(f"/portal/campaigns/{campaign_id}/report.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(report.text)))
    stored = operator.sql(f"SELECT id, msisdn, state, clientsmsid, text FROM messages WHERE id NOT IN ({before}, {after}) ORDER BY id")
    assert [(int(r["messageid"]), r["mobile"], int(r["delivery-status"]), r["clientsmsid"], r["message"]) for r in lines] == [
        (message_id, msisdn, state, clientsmsid, text) for message_id, msisdn, state, clientsmsid, text in stored
    ]
    assert [r["clientsmsid"] for r in lines] == [str(line) for line in range(2, 32)]  # the CSV's line of each row
    states = dict(re.findall(r'<tr data-state="(\d+)"><td>[^<]*</td><td class="num">(\d+)</td>', page))
    assert (states["1"], states["3"]) == ("29", "1")
    assert figure(page, "refused") == "1"


def test_another_partners_campaign_ids_answer_404(console):
    with portal(console, "rival") as rival:
        action, fields = confirm_form(upload(rival, csv_bytes([[number(1), "a"]]), shortcode="RIVAL").text)
        campaign_id = int(action.split("/")[3])
    with portal(console) as acme:
        token = form_token(acme.get("/portal/campaigns").text)
        for path in (f"/portal/campaigns/{campaign_id}", f"/portal/campaigns/{campaign_id}/report.csv"):
            answer = acme.get(path)
            assert answer.status_code == 404 and "No such campaign." in answer.text, path
        answer = acme.post(action, data={"csrf": token, "token": fields["token"]})
        assert answer.status_code == 404
        assert "data-campaign=" not in acme.get("/portal/campaigns").text
        # Nor may acme send from rival's sender id.
        refused = upload(acme, csv_bytes([[number(2), "b"]]), shortcode="RIVAL")
        assert refused.status_code == 400 and "Choose one of your sender ids." in refused.text
    assert console.gateway.operator.sql("SELECT status FROM campaigns") == [("preview",)]
    assert console.gateway.operator.sql("SELECT count(*) FROM messages") == [(0,)]


def test_campaign_forms_without_the_csrf_token_change_nothing(console):
    with portal(console) as client:
        answer = client.post(
            "/portal/campaigns", data={"template": "hi", "shortcode": "ACME"}, files={"file": ("a.csv", csv_bytes([[number(1), "a"]]))}
        )
        assert answer.status_code == 403 and "CSRF" in answer.text
        assert campaign_ids(console) == []
        action, fields = confirm_form(upload(client, csv_bytes([[number(1), "a"]])).text)
        answer = client.post(action, data={"token": fields["token"]})
        assert answer.status_code == 403
        answer = client.post(action, data={"csrf": fields["csrf"], "token": "not-the-token"})
        assert answer.status_code == 303
    assert console.gateway.operator.sql("SELECT status FROM campaigns") == [("preview",)]


def test_markup_in_a_cell_and_in_the_template_renders_inert(console):
    with portal(console) as client:
        page = upload(client, csv_bytes([[number(1), XSS]]), template="{name} " + XSS, name=XSS + ".csv")
        assert page.status_code == 200
        assert "<script>" not in page.text and "<img" not in page.text
        assert "&lt;script&gt;document.title=&#34;owned&#34;&lt;/script&gt;" in page.text
        action, fields = confirm_form(page.text)
        client.post(action, data=fields)
        detail = wait_accepted(client, int(action.split("/")[3]))
        listing = client.get("/portal/campaigns").text
    for html in (detail, listing):
        assert "<script>document" not in html and "<img" not in html
    stored = console.gateway.operator.sql("SELECT text FROM messages")
    assert stored == [(f"{XSS} {XSS}",)]  # stored as sent, escaped only where shown


def test_uploads_past_the_row_and_size_limits_are_refused(console):
    with portal(console) as client:
        rows = "\n".join(f"0712{i:06d},a" for i in range(MAX_ROWS + 1))
        answer = upload(client, f"mobile,name\n{rows}\n".encode())
        assert answer.status_code == 400 and f"more than {MAX_ROWS:,} rows" in answer.text
        answer = upload(client, b"mobile,name\n" + b"0712000100," + b"a" * MAX_UPLOAD_BYTES + b"\n")
        assert answer.status_code == 413 and "the limit is 10 MB" in answer.text
    assert campaign_ids(console) == []


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("photo.xlsx", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a valid XLSX workbook"),
        ("broken.xlsx", b"PK\x03\x04" + b"\x00" * 64, "not a valid XLSX workbook"),
        ("old.xls", b"\xd0\xcf\x11\xe0" + b"\x00" * 64, "save the sheet as XLSX or CSV"),
        ("binary.csv", b"mobile,name\n\xff\xfe\x00\x81\n", "save it as UTF-8 CSV or XLSX"),
        ("empty.csv", b"", "empty file"),
        ("header-only.csv", b"mobile,name\n", "no rows under the header"),
        ("no-number.csv", b"who,name\nx,y\n", "no number column found"),
        ("wrong-field.csv", b"mobile,name\n0712000100,a\n", "has no such column"),
    ],
    ids=["png-as-xlsx", "broken-zip", "xls", "not-utf8", "empty", "header-only", "no-number-column", "unknown-field"],
)
def test_a_file_that_is_not_a_campaign_gets_a_clear_error(console, name, data, message):
    template = "{surname}" if name == "wrong-field.csv" else "hi {name}"
    with portal(console) as client:
        answer = upload(client, data, template=template, name=name)
    assert answer.status_code == 400
    assert message in answer.text, answer.text
    assert campaign_ids(console) == []


def test_an_xlsx_upload_is_read_with_numbers_stored_as_numbers(console):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Phone", "Name", "Amount"])
    sheet.append([254712000100, "Ann", 12.5])  # a number cell, as spreadsheets keep phone numbers
    sheet.append(["0733000100", "Bob", 7])
    sheet.append([None, None, None])  # an empty row is no row
    sheet.append(["0712000200", None, 3])
    data = io.BytesIO()
    book.save(data)
    with portal(console) as client:
        page = upload(client, data.getvalue(), template="{name} owes {amount}", name="people.xlsx")
        assert page.status_code == 200, page.text
        assert (figure(page.text, "rows"), figure(page.text, "valid"), figure(page.text, "invalid")) == ("3", "2", "1")
        assert "Ann owes 12.5" in page.text and "Bob owes 7" in page.text
        action, fields = confirm_form(page.text)
        client.post(action, data=fields)
        wait_accepted(client, int(action.split("/")[3]))
    assert console.gateway.operator.sql("SELECT msisdn, text, clientsmsid FROM messages ORDER BY id") == [
        ("254712000100", "Ann owes 12.5", "2"),
        ("254733000100", "Bob owes 7", "3"),
    ]


def test_an_upload_posted_twice_creates_one_campaign(console):
    with portal(console) as client:
        page = client.get("/portal/campaigns/new").text
        fields = {"csrf": form_token(page), "template": "hi", "shortcode": "ACME", "form_id": "same-form"}
        first = client.post("/portal/campaigns", data=fields, files={"file": ("a.csv", csv_bytes([[number(1), "a"]]))})
        again = client.post("/portal/campaigns", data=fields, files={"file": ("a.csv", csv_bytes([[number(1), "a"]]))})
    assert first.status_code == 200
    (campaign_id,) = campaign_ids(console)
    assert again.status_code == 303 and again.headers["location"] == f"/portal/campaigns/{campaign_id}"


# -- one-time form ids of the console -------------------------------------------------------


def operator_client(console):
    return signed_in(console.url, "console", OPERATOR, OPERATOR_PASSWORD)


def form_id_of(html: str, form: str) -> str:
    found = re.search(rf'id="{form}".*?name="form_id" value="([^"]+)"', html, re.S)
    assert found is not None, html
    return found.group(1)


def test_a_top_up_form_posted_twice_credits_once(console):
    with operator_client(console) as client:
        page = client.get("/console/partners/acme").text
        fields = {"csrf": form_token(page), "form_id": form_id_of(page, "topup"), "units": "25", "reference": "INV-1"}
        answers = [client.post("/console/partners/acme/topup", data=fields) for _ in range(2)]
        assert [(a.status_code, a.headers["location"]) for a in answers] == [(303, "/console/partners/acme?done=topup")] * 2
        # A new rendering of the form is a new top-up.
        page = client.get("/console/partners/acme").text
        client.post("/console/partners/acme/topup", data={**fields, "form_id": form_id_of(page, "topup")})
    operator = console.gateway.operator
    assert [(e["amount"], e["reference"]) for e in operator.ledger("acme") if e["kind"] == "topup"][-2:] == [(25_00, "INV-1"), (25_00, "INV-1")]
    assert len([e for e in operator.ledger("acme") if e["reference"] == "INV-1"]) == 2
    assert operator.balance("acme") == 1050_00
    assert operator.sql("SELECT count(*) FROM audit_log WHERE action = 'top-up'") == [(2,)]


def test_a_top_up_form_posted_twice_at_once_credits_once(console):
    with operator_client(console) as client:
        page = client.get("/console/partners/acme").text
        fields = {"csrf": form_token(page), "form_id": form_id_of(page, "topup"), "units": "40", "reference": "INV-2"}
        cookies = dict(client.cookies)
    statuses: list[int] = []

    def post() -> None:
        with httpx.Client(base_url=console.url, cookies=cookies, timeout=30) as other:
            statuses.append(other.post("/console/partners/acme/topup", data=fields).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [303] * 4
    assert len([e for e in console.gateway.operator.ledger("acme") if e["reference"] == "INV-2"]) == 1
    assert console.gateway.operator.balance("acme") == 1040_00


def test_a_create_partner_form_posted_twice_creates_once_and_leads_to_the_partner(console):
    with operator_client(console) as client:
        page = client.get("/console/partners").text
        fields = {"csrf": form_token(page), "form_id": form_id_of(page, "create-partner"), "partner_id": "newco", "credits": "10"}
        first = client.post("/console/partners", data=fields)
        again = client.post("/console/partners", data=fields)
    assert first.status_code == 200 and "newco" in first.text
    assert again.status_code == 303 and again.headers["location"] == "/console/partners/newco?done=created"
    assert console.gateway.operator.sql("SELECT count(*) FROM audit_log WHERE action = 'create-partner'") == [(1,)]


def test_a_rotate_key_form_posted_twice_rotates_once(console):
    with portal(console) as client:
        page = client.get("/portal/account").text
        fields = {"csrf": form_token(page), "form_id": form_id_of(page, "rotate-key")}
        first = client.post("/portal/account/key", data=fields)
        key_hash = console.gateway.operator.sql("SELECT api_key_hash FROM partners WHERE id = 'acme'")
        again = client.post("/portal/account/key", data=fields, follow_redirects=True)
    assert 'id="shown-secret"' in first.text
    assert "already sent" in again.text and 'id="shown-secret"' not in again.text
    assert console.gateway.operator.sql("SELECT api_key_hash FROM partners WHERE id = 'acme'") == key_hash


def test_a_campaign_whose_process_died_is_taken_over_and_no_batch_is_charged_twice(console):
    """As after a kill between a batch's acceptance and its record: the next process that shows
    the campaign sends the batches again with the same Idempotency-Keys and is answered from the
    first acceptance."""
    count = CAMPAIGN_BATCH + 200
    rows = [[number(i), f"n{i}"] for i in range(count)]
    data = csv_bytes(rows)
    operator = console.gateway.operator
    operator.sql("UPDATE partners SET balance = 200000 WHERE id = 'acme'")
    with portal(console) as client:
        action, fields = confirm_form(upload(client, data).text)
        client.post(action, data=fields)
        campaign_id = int(action.split("/")[3])
        wait_accepted(client, campaign_id)
        charges = operator.sql("SELECT id, amount FROM ledger WHERE kind <> 'topup' ORDER BY id")
        report = client.get(f"/portal/campaigns/{campaign_id}/report.csv").text
        # Back to what the store held when the process died: both batches charged, neither recorded.
        operator.sql("DELETE FROM campaign_ranges")
        operator.sql(
            "UPDATE campaigns SET status = 'accepting', batches_done = 0, accepted = 0, refused = 0, heartbeat_at = 0, finished_at = NULL, upload = :data",
            {"data": data},
        )
        assert client.get(f"/portal/campaigns/{campaign_id}/report.csv").text.count("\n") == 1  # nothing recorded
        page = wait_accepted(client, campaign_id)
        assert figure(page, "accepted") == str(count)
        assert client.get(f"/portal/campaigns/{campaign_id}/report.csv").text == report
    assert operator.sql("SELECT id, amount FROM ledger WHERE kind <> 'topup' ORDER BY id") == charges
    assert operator.sql("SELECT count(*) FROM messages") == [(count,)]
    assert operator.balance("acme") == 2000_00 - count * 100


def test_a_campaign_being_accepted_by_a_live_process_is_not_taken_over(console):
    operator = console.gateway.operator
    with portal(console) as client:
        action, _ = confirm_form(upload(client, csv_bytes([[number(1), "a"]])).text)
        campaign_id = int(action.split("/")[3])
        # Another process confirmed it a moment ago and is at work on it.
        operator.sql(f"UPDATE campaigns SET status = 'accepting', heartbeat_at = {int(time.time() * 1000)}")
        page = client.get(f"/portal/campaigns/{campaign_id}").text
        assert figure(page, "campaign-status").startswith("accepting")
        time.sleep(1)
    assert operator.sql("SELECT count(*) FROM messages") == [(0,)]
