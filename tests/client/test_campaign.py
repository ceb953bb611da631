"""The campaign's building blocks on real files: reading the CSV, filling templates, the
results file surviving a cut, and how rows are grouped into requests on resume."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from smsgw.client import Message, SendResult
from smsgw.client.campaign import (
    REASON_BAD_NUMBER,
    REASON_EMPTY_TEXT,
    CampaignError,
    CsvSource,
    MessageTemplate,
    MissingField,
    Record,
    ResultsLog,
    ResumeState,
    RowBuilder,
    RowState,
    XlsxSource,
    key_deriver,
    plan,
    reason_of,
    result_row,
)

from .conftest import write_csv


def source_of(tmp_path: Path, text: str, name: str = "c.csv", **options) -> CsvSource:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return CsvSource(path, **options)


def test_records_carry_the_line_they_start_on(tmp_path):
    source = source_of(tmp_path, '\ufeffName,Mobile\nA,0712000001\n\n"B\nsecond line",0712000002\nC,0712000003\n')
    assert source.header == ["Name", "Mobile"]
    records = list(source.records())
    assert [(r.line, r.index, r.values[0]) for r in records] == [(2, 1, "A"), (4, 2, "B\nsecond line"), (6, 3, "C")]
    assert source.count() == 3


def test_delimiter_is_guessed_from_the_header(tmp_path):
    source = source_of(tmp_path, "name;mobile\nA;0712000001\n")
    assert source.delimiter == ";" and next(source.records()).values == ["A", "0712000001"]


def test_bad_encoding_is_a_campaign_error(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,mobile\nJos\xe9,0712000001\n".encode("latin-1"))
    with pytest.raises(CampaignError, match="--encoding"):
        CsvSource(path).count()
    assert CsvSource(path, encoding="latin-1").count() == 1


def test_template_fills_columns_and_refuses_what_it_cannot_fill(tmp_path):
    source = source_of(tmp_path, "Name,Amount,mobile\n")
    template = MessageTemplate("Dear {name}, you owe {AMOUNT:>6} {{KES}}", source)
    assert template.render(["Ann", "12", "0712"]) == "Dear Ann, you owe     12 {KES}"
    with pytest.raises(MissingField) as missing:
        template.render(["", "12", "0712"])
    assert missing.value.name == "name"
    for bad, reason in [
        ("Dear {surname}", "no such column"),
        ("Dear {name!r}", "not a column name"),
        ("Dear {", "literal braces"),
        ("{}", "not a column name"),
    ]:
        with pytest.raises(CampaignError, match=reason):
            MessageTemplate(bad, source)


def test_row_builder_finds_columns_and_explains_bad_rows(tmp_path):
    source = source_of(tmp_path, "Phone,Text,ref\n")
    builder = RowBuilder.create(source, clientsmsid_column="ref")
    rows = list(source_of(tmp_path, "Phone,Text,ref\n0712000001,Hi,r1\n,Hi,r2\n0712000003,,r3\n0712000004,Hi,\n", "d.csv").records())
    built = [builder.build(r) for r in rows]
    assert built[0] == Message("0712000001", "Hi", "r1")
    assert built[1].startswith("missing number") and built[2].startswith("missing message") and built[3].startswith("missing clientsmsid")
    assert RowBuilder.create(source, message_template="x").build(rows[0]).clientsmsid == 2  # default: the line
    with pytest.raises(CampaignError, match="no number column"):
        RowBuilder.create(source_of(tmp_path, "who,Text\n", "e.csv"))
    with pytest.raises(CampaignError, match="not both"):
        RowBuilder.create(source, message_template="x", message_column="Text")


def write_results(path: Path, header: list[str], lines: range, code: int = 200) -> None:
    log, _ = ResultsLog.open(path, header, resume=False)
    records = [Record(line, index, [f"N{line}", f"07{line:08d}"]) for index, line in enumerate(lines, start=1)]
    description = "Success" if code == 200 else "Low bulk credits"
    log.write([result_row(r, SendResult(code, description, None, str(r.line) if code == 200 else None, 1)) for r in records])
    log.close()


def test_results_file_cut_without_final_newline_is_truncated_on_resume(tmp_path):
    path = tmp_path / "r.csv"
    write_results(path, ["name", "mobile"], range(2, 12))
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # the last record loses its end
    log, state = ResultsLog.open(path, ["name", "mobile"], resume=True)
    log.close()
    assert [state.get(n) for n in range(2, 12)] == [RowState.DONE] * 9 + [RowState.NONE]
    assert path.read_bytes() == whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 1]


def test_results_file_cut_inside_a_quoted_multiline_value_is_truncated(tmp_path):
    path = tmp_path / "r.csv"
    log, _ = ResultsLog.open(path, ["text"], resume=False)
    log.close()
    complete = path.read_bytes() + b'2,"one",10,200,Success,1\n'
    path.write_bytes(complete + b'3,"first line\nsecond')  # cut right after an embedded newline
    _, state = ResultsLog.open(path, ["text"], resume=True)
    assert (state.get(2), state.get(3)) == (RowState.DONE, RowState.NONE)
    assert path.read_bytes() == complete


def test_results_states_and_header_checks(tmp_path):
    path = tmp_path / "r.csv"
    write_results(path, ["name", "mobile"], range(2, 5), code=1004)
    with pytest.raises(CampaignError, match="add --resume"):
        ResultsLog.open(path, ["name", "mobile"], resume=False)
    with pytest.raises(CampaignError, match="other columns"):
        ResultsLog.open(path, ["name", "phone"], resume=True)
    state = ResultsLog.read_state(path, ["name", "mobile"])
    assert [state.get(n) for n in (2, 3, 4, 5)] == [RowState.RETRY] * 3 + [RowState.NONE]


def campaign(tmp_path: Path, rows: int) -> tuple[CsvSource, RowBuilder]:
    path = write_csv(tmp_path / "plan.csv", ["name", "mobile"], ([f"N{i}", f"07{i:08d}"] for i in range(rows)))
    source = CsvSource(path)
    return source, RowBuilder.create(source, message_template="Hi {name}")


def test_requests_follow_fixed_blocks_of_the_csv(tmp_path):
    source, builder = campaign(tmp_path, 25)
    batches = list(plan(source.records(), builder, ResumeState(), 10))
    assert [len(b.messages) for b in batches] == [10, 10, 5]
    assert [m.clientsmsid for m in batches[2].messages] == [22, 23, 24, 25, 26]


def test_resume_plans_whole_blocks_for_lost_answers_and_only_the_retryable_rows_otherwise(tmp_path):
    source, builder = campaign(tmp_path, 30)  # lines 2-31, blocks: 2-11, 12-21, 22-31
    state = ResumeState()
    for line in range(2, 12):
        state.set(line, RowState.DONE)  # block 1 recorded
    for line in range(12, 16):
        state.set(line, RowState.DONE)  # block 2 cut after four rows
    for line in range(22, 32):
        state.set(line, RowState.DONE if line % 2 else RowState.RETRY)  # block 3: 1004 for half
    first, second, third = plan(source.records(), builder, state, 10)
    assert first.messages == [] and first.context.already_done == 10
    # Block 2 goes whole (same bytes as the first run), but only the unrecorded rows are written.
    assert [m.clientsmsid for m in second.messages] == list(range(12, 22))
    assert second.context.record == [False] * 4 + [True] * 6
    assert [m.clientsmsid for m in third.messages] == [22, 24, 26, 28, 30]
    assert third.context.already_done == 5


def test_plan_stops_at_a_block_boundary(tmp_path):
    source, builder = campaign(tmp_path, 50)
    for stop_after in (2, 4):  # a middle block, and the one before the last
        produced = []
        for batch in plan(
            source.records(), builder, ResumeState(), 10, stop=lambda produced=produced, stop_after=stop_after: len(produced) == stop_after
        ):
            produced.append(batch)
        assert len(produced) == stop_after


def test_keys_depend_on_the_run_and_the_exact_body():
    derive = key_deriver("nonce1")
    assert derive(b"body") == derive(b"body") != derive(b"body2")
    assert key_deriver("nonce2")(b"body") != derive(b"body")
    assert len(derive(b"x")) <= 255 and derive(b"x").isprintable()


def test_uploaded_csv_bytes_read_as_the_file_would(tmp_path):
    content = 'mobile;name\n0712000100;Ann\n\n0733000100;"Bob\nJr"\n'
    path = tmp_path / "a.csv"
    path.write_text(content, encoding="utf-8")
    from_file = CsvSource(path)
    from_bytes = CsvSource("upload.csv", data=content.encode())
    assert from_bytes.header == from_file.header == ["mobile", "name"]
    assert [(r.line, r.index, r.values) for r in from_bytes.records()] == [(r.line, r.index, r.values) for r in from_file.records()]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (254712000100, "254712000100"),
        (254712000100.0, "254712000100"),  # a phone number kept as a number cell
        (12.5, "12.5"),
        (True, "TRUE"),
        (datetime.datetime(2026, 12, 2, 8, 30), "2026-12-02 08:30:00"),
        (datetime.date(2026, 12, 2), "2026-12-02"),
        (datetime.time(8, 30), "08:30:00"),
        ("  text ", "  text "),
    ],
    ids=["empty", "int", "whole-float", "float", "bool", "datetime", "date", "time", "text"],
)
def test_xlsx_cells_read_as_text(tmp_path, value, text):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["mobile", "value"])
    book.active.append(["0712000100", value])
    path = tmp_path / "sheet.xlsx"
    book.save(path)
    source = XlsxSource("sheet.xlsx", path.read_bytes())
    assert source.header == ["mobile", "value"]
    assert [(r.line, r.values) for r in source.records()] == [(2, ["0712000100", text])]


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"not a zip at all", "not a valid XLSX workbook"), (b"PK\x03\x04" + bytes(40), "not a valid XLSX workbook")],
    ids=["not-zip", "broken-zip"],
)
def test_a_broken_workbook_is_a_campaign_error(data, message):
    with pytest.raises(CampaignError, match=message):
        XlsxSource("sheet.xlsx", data)


@pytest.mark.parametrize(
    ("problem", "reason"),
    [
        ("missing number (column 'mobile' is empty)", REASON_BAD_NUMBER),
        ("missing field 'name' for the message", REASON_EMPTY_TEXT),
        ("missing message (column 'message' is empty)", REASON_EMPTY_TEXT),
    ],
    ids=["number", "field", "message"],
)
def test_row_problems_have_their_kind(problem, reason):
    assert reason_of(problem) == reason
