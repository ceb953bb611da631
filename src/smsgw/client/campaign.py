"""A bulk campaign from a CSV file: rows in, requests out, a results file that survives a kill.

Everything here streams. The CSV is read record by record; at most a few batches of rows are
held at a time; results are appended to the results file as each request is answered.

Resume semantics (docs/client.md, "Resuming"):

* The results file is the record of what happened. A row whose latest result has a final
  code (200, or a per-row refusal such as 1003) is never sent again. Rows refused for a
  reason that can change (1004 low credit, 1005 system error), rows with no result, and
  rows that were bad (missing field) are considered again by `--resume`.
* A result is written only once the provider answered. A request whose answer never came
  (the process was killed while it was in flight) leaves its rows without results, so they
  are sent again by `--resume`: at least once across runs.
* Every request's Idempotency-Key is derived from the run's nonce (kept beside the results
  file) and the exact request body. Rows are grouped into requests by their position in
  the CSV, so `--resume` rebuilds byte-identical requests for the rows whose answer was
  lost, and a provider that honours Idempotency-Key (smsgw, for 24 hours) answers them from
  the first acceptance instead of sending again: exactly once on smsgw.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import os
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..domain.codes import Code
from ..domain.compliance import with_footer
from ..domain.encoding import Encoding, count_parts
from .models import Batch, BatchOutcome, Message, OptOutAnswer, SendResult

# Per-row codes after which sending the row again can change nothing, or would send it
# twice. Everything else recorded against a row is final too, except these: the provider
# accepted nothing and charged nothing, and a later run may succeed (after a top-up).
RETRYABLE_ROW_CODES = frozenset({int(Code.LOW_CREDIT), int(Code.MESSAGE_SYSTEM_ERROR)})

RESULT_COLUMNS = ("messageid", "code", "description", "networkid")
# Why a row cannot be sent, by kind (Tally.reasons): what a preview counts.
REASON_BAD_NUMBER = "bad number"
REASON_UNKNOWN_NETWORK = "unknown network"
REASON_EMPTY_TEXT = "empty text"
REASON_TOO_LONG = "too long"
LINE_COLUMN = "line"
MOBILE_COLUMN_NAMES = ("mobile", "msisdn", "phone", "phone_number", "phonenumber", "number", "tel")
MESSAGE_COLUMN_NAMES = ("message", "text", "sms", "body")


class CampaignError(ValueError):
    """A problem with the campaign's files or options (not with a row): nothing is sent."""


# -- reading the CSV ----------------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    line: int  # physical line of the file where the record starts (the header is line 1)
    index: int  # 1 for the first data record
    values: list[str]


class TableSource:
    """A campaign's rows with a header naming their columns: a CSV file, or a spreadsheet's
    first sheet. Read lazily, as many times as needed (counting, then sending)."""

    path: Path  # what error messages call the source
    header: list[str]

    def column(self, name: str) -> int | None:
        wanted = name.strip().lower()
        for position, column in enumerate(self.header):
            if column.lower() == wanted:
                return position
        return None

    def first_column(self, names: Sequence[str]) -> int | None:
        for name in names:
            position = self.column(name)
            if position is not None:
                return position
        return None

    def records(self) -> Iterator[Record]:
        raise NotImplementedError

    def count(self) -> int:
        return sum(1 for _ in self.records())

    def _set_header(self, header: Sequence[Any], shown: str) -> None:
        self.header = ["" if name is None else str(name).strip() for name in header]
        if not any(self.header):
            raise CampaignError(f"{self.path}: empty file, or no header line")
        if any(not name for name in self.header):
            raise CampaignError(f"{self.path}: the header has an empty column name: {shown!r}")


class CsvSource(TableSource):
    """The campaign's CSV file, or the bytes of one (`data`, an upload, named by `path`)."""

    def __init__(self, path: str | os.PathLike[str], *, encoding: str = "utf-8-sig", delimiter: str | None = None, data: bytes | None = None) -> None:
        self.path = Path(path)
        self.encoding = encoding
        self.data = data
        try:
            with self._open() as handle:
                first = handle.readline()
        except FileNotFoundError:
            raise CampaignError(f"{self.path}: no such file") from None
        except UnicodeDecodeError as exc:
            raise CampaignError(f"{self.path}: not {encoding} text ({exc.reason}); give --encoding") from None
        except OSError as exc:
            raise CampaignError(f"{self.path}: {exc.strerror}") from None
        if not first.strip():
            raise CampaignError(f"{self.path}: empty file, or no header line")
        self.delimiter = delimiter or _guess_delimiter(first)
        self._set_header(next(csv.reader([first], delimiter=self.delimiter)), first.strip())

    def _open(self) -> io.TextIOWrapper:
        if self.data is not None:
            return io.TextIOWrapper(io.BytesIO(self.data), encoding=self.encoding, newline="")
        return open(self.path, newline="", encoding=self.encoding)

    def records(self) -> Iterator[Record]:
        width = len(self.header)
        with self._open() as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            try:
                next(reader)  # the header
                index = 0
                previous_line = reader.line_num
                for values in reader:
                    start = previous_line + 1
                    previous_line = reader.line_num
                    if not values or (len(values) == 1 and not values[0].strip()):
                        continue  # a blank line is not a row
                    index += 1
                    if len(values) < width:
                        values.extend([""] * (width - len(values)))
                    yield Record(start, index, values)
            except UnicodeDecodeError as exc:
                raise CampaignError(f"{self.path}: after line {reader.line_num}: not {self.encoding} text ({exc.reason}); give --encoding") from None
            except csv.Error as exc:
                raise CampaignError(f"{self.path}: line {reader.line_num}: {exc}") from None


class XlsxSource(TableSource):
    """The first sheet of an XLSX workbook (the bytes of an upload, named by `path`), read in
    openpyxl's read-only mode, row by row; its first row is the header. A whole number stored
    as a number (as spreadsheets keep phone numbers) reads as its digits."""

    def __init__(self, path: str | os.PathLike[str], data: bytes) -> None:
        self.path = Path(path)
        self.data = data
        rows = self._rows()
        try:
            first = next(rows, None)
        finally:
            rows.close()
        if first is None:
            raise CampaignError(f"{self.path}: empty sheet, or no header row")
        self._set_header(first[1], ", ".join(_cell_text(v) for v in first[1]))

    def _rows(self) -> Generator[tuple[int, tuple[Any, ...]]]:
        import zipfile

        from openpyxl import load_workbook  # only for spreadsheets: the CLI's CSV path never needs it

        try:
            book = load_workbook(io.BytesIO(self.data), read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise CampaignError(f"{self.path}: not a valid XLSX workbook ({exc})") from None
        try:
            sheet = book.worksheets[0] if book.worksheets else None
            if sheet is None:
                return
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, tuple(row)
        finally:
            book.close()

    def records(self) -> Iterator[Record]:
        width = len(self.header)
        rows = self._rows()
        try:
            next(rows, None)  # the header
            index = 0
            for number, row in rows:
                values = [_cell_text(value) for value in row[:width]]
                if not any(value.strip() for value in values):
                    continue  # an empty row is not a row
                index += 1
                values.extend([""] * (width - len(values)))
                yield Record(number, index, values)
        finally:
            rows.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime):
        # A date cell reads as a datetime at midnight: shown as the date it was typed as.
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _guess_delimiter(header_line: str) -> str:
    candidates = {delimiter: header_line.count(delimiter) for delimiter in (",", ";", "\t", "|")}
    best = max(candidates, key=lambda d: candidates[d])
    return best if candidates[best] else ","


# -- turning a record into a message ----------------------------------------------------------


class MessageTemplate:
    """`"Dear {name}, your balance is {balance}."` filled from the row's columns (matched
    without regard to case). Only plain column names are allowed in braces; `{{` and `}}`
    are literal braces. A column that is empty on a row makes that row bad."""

    def __init__(self, text: str, source: TableSource) -> None:
        self.text = text
        self.fields: dict[str, int] = {}
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise CampaignError(f"--message: {exc} (write {{{{ and }}}} for literal braces)") from None
        pieces: list[tuple[str, str | None, str]] = []  # (literal text, field, format spec)
        for literal, name, spec, conversion in parsed:
            if name is None:
                pieces.append((literal, None, ""))
                continue
            if conversion or not name.strip():
                raise CampaignError(f"--message: {{{name}{'!' + conversion if conversion else ''}}} is not a column name; use {{column}} only")
            if spec and any(ch in spec for ch in "{}"):
                raise CampaignError(f"--message: nested fields in {{{name}:{spec}}} are not supported")
            position = source.column(name)
            if position is None:
                raise CampaignError(f"--message uses {{{name}}}, but the CSV has no such column (columns: {', '.join(source.header)})")
            self.fields[name] = position
            pieces.append((literal, name, spec or ""))
        self._pieces = pieces

    def render(self, values: Sequence[str]) -> str:
        out: list[str] = []
        for literal, name, spec in self._pieces:
            out.append(literal)
            if name is None:
                continue
            value = values[self.fields[name]].strip()
            if not value:
                raise MissingField(name)
            out.append(format(value, spec) if spec else value)
        return "".join(out)


def reason_of(problem: str) -> str:
    """The kind of a RowBuilder.build problem: a missing number is a bad number, a missing
    field or message an empty text."""
    return REASON_BAD_NUMBER if problem.startswith("missing number") else REASON_EMPTY_TEXT


class MissingField(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass
class RowBuilder:
    """How a record becomes a Message: which column holds the number, where the text comes
    from, and which clientsmsid it carries (the record's line number unless a column is
    named, so that delivery reports and the store can be matched back to the CSV)."""

    source: TableSource
    mobile_column: int
    template: MessageTemplate | None = None
    message_column: int | None = None
    clientsmsid_column: int | None = None
    time_to_send: str | None = None

    @classmethod
    def create(
        cls,
        source: TableSource,
        *,
        mobile_column: str | None = None,
        message_template: str | None = None,
        message_column: str | None = None,
        clientsmsid_column: str | None = None,
        time_to_send: str | None = None,
    ) -> RowBuilder:
        columns = ", ".join(source.header)
        if mobile_column:
            mobile = source.column(mobile_column)
            if mobile is None:
                raise CampaignError(f"--mobile-column {mobile_column!r} is not a column of the CSV (columns: {columns})")
        else:
            mobile = source.first_column(MOBILE_COLUMN_NAMES)
            if mobile is None:
                raise CampaignError(
                    f"no number column found (looked for {', '.join(MOBILE_COLUMN_NAMES)}); give --mobile-column (columns: {columns})"
                )
        template = None
        message = None
        if message_template is not None and message_column is not None:
            raise CampaignError("give --message or --message-column, not both")
        if message_template is not None:
            if not message_template.strip():
                raise CampaignError("--message is empty")
            template = MessageTemplate(message_template, source)
        elif message_column:
            message = source.column(message_column)
            if message is None:
                raise CampaignError(f"--message-column {message_column!r} is not a column of the CSV (columns: {columns})")
        else:
            message = source.first_column(MESSAGE_COLUMN_NAMES)
            if message is None:
                raise CampaignError(
                    f"no message column found (looked for {', '.join(MESSAGE_COLUMN_NAMES)}); give --message TEMPLATE or --message-column"
                )
        clientsmsid = None
        if clientsmsid_column:
            clientsmsid = source.column(clientsmsid_column)
            if clientsmsid is None:
                raise CampaignError(f"--clientsmsid-column {clientsmsid_column!r} is not a column of the CSV (columns: {columns})")
        return cls(source, mobile, template, message, clientsmsid, time_to_send)

    def build(self, record: Record) -> Message | str:
        """The record's message, or why the record cannot be sent (reason_of tells its kind)."""
        values = record.values
        mobile = values[self.mobile_column].strip()
        if not mobile:
            return f"missing number (column {self.source.header[self.mobile_column]!r} is empty)"
        if self.template is not None:
            try:
                text = self.template.render(values)
            except MissingField as exc:
                return f"missing field {exc.name!r} for the message"
        else:
            assert self.message_column is not None
            text = values[self.message_column]
            if not text.strip():
                return f"missing message (column {self.source.header[self.message_column]!r} is empty)"
        if self.clientsmsid_column is not None:
            clientsmsid: str | int = values[self.clientsmsid_column].strip()
            if not clientsmsid:
                return f"missing clientsmsid (column {self.source.header[self.clientsmsid_column]!r} is empty)"
        else:
            clientsmsid = record.line
        return Message(mobile, text, clientsmsid, self.time_to_send)


# -- the results file ---------------------------------------------------------------------------


class RowState:
    NONE = 0  # no result recorded
    DONE = 1  # a final result: never sent again
    RETRY = 2  # refused for a reason that may pass (1004, 1005): sent again on resume
    BAD = 3  # not sent because the row was bad: checked again on resume


class ResumeState:
    """The latest recorded state of each CSV line, one byte per line (1 MB per million rows)."""

    def __init__(self) -> None:
        self._states = bytearray()
        self.recorded_lines = 0
        self.ignored_records = 0

    def get(self, line: int) -> int:
        return self._states[line] if line < len(self._states) else RowState.NONE

    def set(self, line: int, state: int) -> None:
        if line >= len(self._states):
            self._states.extend(bytes(max(line + 1 - len(self._states), len(self._states) // 2)))
        if self._states[line] == RowState.NONE:
            self.recorded_lines += 1
        self._states[line] = state

    def count(self, state: int) -> int:
        return self._states.count(state)


def row_state_of(code: str) -> int:
    text = code.strip()
    if not text:
        return RowState.BAD
    if text.lstrip("-").isdigit() and int(text) in RETRYABLE_ROW_CODES:
        return RowState.RETRY
    return RowState.DONE


class ResultsLog:
    """The results CSV: `line`, the input row, then messageid, code, description, networkid.

    Rows are appended as requests are answered, one write per request, flushed at once (so a
    killed process loses nothing that was written) and synced to disk every few seconds.
    On opening for resume, a record cut short by a kill (no final newline, an unterminated
    quote, too few columns) is dropped and the file truncated before it."""

    SYNC_INTERVAL = 2.0

    def __init__(self, path: Path, input_header: Sequence[str]) -> None:
        self.path = path
        self.header = [LINE_COLUMN, *input_header, *RESULT_COLUMNS]
        self._handle: io.TextIOWrapper | None = None
        self._last_sync = time.monotonic()

    @classmethod
    def open(cls, path: str | os.PathLike[str], input_header: Sequence[str], *, resume: bool) -> tuple[ResultsLog, ResumeState]:
        log = cls(Path(path), input_header)
        state = ResumeState()
        if log.path.exists() and log.path.stat().st_size > 0:
            if not resume:
                raise CampaignError(f"{log.path} exists: add --resume to continue that run, or give another --results file")
            end = log._read(state)
            with open(log.path, "r+b") as raw:
                raw.truncate(end)
            log._handle = open(log.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - kept open for the run, closed by close()
            if end == 0:
                log._write_rows([log.header])
        else:
            log.path.parent.mkdir(parents=True, exist_ok=True)
            log._handle = open(log.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - kept open for the run, closed by close()
            log._write_rows([log.header])
        log.sync()
        return log, state

    @classmethod
    def read_state(cls, path: str | os.PathLike[str], input_header: Sequence[str]) -> ResumeState:
        """The recorded state of each line, without changing the file (for --dry-run)."""
        state = ResumeState()
        cls(Path(path), input_header)._read(state)
        return state

    def _read(self, state: ResumeState) -> int:
        """Loads `state` from the file; returns the byte offset where the last complete
        record ends."""
        width = len(self.header)
        line_at = 0
        code_at = width - 3
        with open(self.path, "rb") as raw:
            position = 0
            ends_line = True

            def lines() -> Iterator[str]:
                nonlocal position, ends_line
                for chunk in raw:
                    position += len(chunk)
                    ends_line = chunk.endswith(b"\n")
                    yield chunk.decode("utf-8", "replace")

            reader = csv.reader(lines(), strict=True)
            try:
                header = next(reader)
            except (StopIteration, csv.Error):
                return 0
            if not ends_line:
                return 0
            if header != self.header:
                raise CampaignError(f"{self.path} was written for a CSV with other columns; resume with the same CSV, or give another --results file")
            complete = position
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    break
                except csv.Error:
                    break  # an unterminated quote at the end: a record cut short
                if not ends_line:
                    break  # the last line has no newline: cut short
                complete = position
                if len(values) != width or not values[line_at].isdigit():
                    state.ignored_records += 1
                    continue
                state.set(int(values[line_at]), row_state_of(values[code_at]))
            return complete

    def _write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        assert self._handle is not None
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        self._handle.write(buffer.getvalue())
        self._handle.flush()

    def write(self, rows: Iterable[Sequence[Any]]) -> None:
        self._write_rows(rows)
        if time.monotonic() - self._last_sync >= self.SYNC_INTERVAL:
            self.sync()

    def sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None


def result_row(record: Record, result: SendResult) -> list[Any]:
    return [
        record.line,
        *record.values,
        result.message_id or "",
        result.code,
        result.description,
        "" if result.network_id is None else result.network_id,
    ]


def bad_row(record: Record, reason: str) -> list[Any]:
    return [record.line, *record.values, "", "", f"not sent: {reason}", ""]


class RunFile:
    """The run's nonce and the options that shape its requests, beside the results file
    (`RESULTS.run.json`), written before the first request so that a resumed run derives
    the same Idempotency-Keys and can tell when it would build different requests."""

    def __init__(self, results_path: Path) -> None:
        self.path = results_path.with_name(results_path.name + ".run.json")

    def create(self, csv_path: Path, options: dict[str, Any]) -> dict[str, Any]:
        data = {
            "nonce": secrets.token_hex(16),
            "csv": str(csv_path.resolve()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "options": options,
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        return data

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("nonce"), str) or not data["nonce"]:
            return None
        if not isinstance(data.get("options"), dict):
            data["options"] = {}
        return data


def key_deriver(nonce: str) -> Callable[[bytes], str]:
    """Idempotency-Key = the run's nonce + SHA-256 of the exact body: the same rows sent
    again by a resumed run get the same key, and a different body can never reuse a key
    (which smsgw would refuse with 1010)."""

    def derive(body: bytes) -> str:
        return f"smsgw-send-{nonce}-{hashlib.sha256(body).hexdigest()[:40]}"

    return derive


# -- planning the requests --------------------------------------------------------------------


@dataclass(slots=True)
class Chunk:
    """The rows of one block of `batch_size` consecutive CSV records, and what is done with
    them in this run. `sent[i]` is the record of message i of the batch; `record[i]` says
    whether its result is written (False for a row already done, sent again only so that
    the request is byte-identical to the first run's)."""

    records: int = 0
    already_done: int = 0
    sent: list[Record] = field(default_factory=list)
    record: list[bool] = field(default_factory=list)
    bad: list[tuple[Record, str]] = field(default_factory=list)
    still_bad: int = 0  # bad rows already recorded as bad by an earlier run


def plan(
    records: Iterable[Record],
    builder: RowBuilder,
    state: ResumeState,
    batch_size: int,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Batch]:
    """One Batch per block of `batch_size` consecutive records (blocks fixed by record
    position, so that every run cuts the CSV the same way), holding the block's rows still
    to send. A block whose rows all have no result yet (their answer was lost) is sent
    whole; so is a block of which only part was recorded before a kill; otherwise only its
    rows refused for a passing reason, or no longer bad, go. Stops early when `stop()`."""
    chunk = Chunk()
    messages: list[Message] = []
    block = None
    unrecorded_good = 0
    # Rows already done, kept with their message in case the block has to go out whole.
    done_rows: list[tuple[int, Record, Message]] = []

    def finish() -> Batch:
        nonlocal chunk, messages, unrecorded_good, done_rows
        if unrecorded_good and done_rows:
            # Part of the block was recorded, part not: the first run's request was answered
            # but the kill cut the writing of its results. Re-send it whole and identical, so
            # that a provider honouring Idempotency-Key answers from the first acceptance.
            merged: list[tuple[int, Record, Message, bool]] = [(r.index, r, m, True) for r, m in zip(chunk.sent, messages)]
            merged += [(index, r, m, False) for index, r, m in done_rows]
            merged.sort(key=lambda item: item[0])
            chunk.sent = [item[1] for item in merged]
            messages = [item[2] for item in merged]
            chunk.record = [item[3] for item in merged]
        batch = Batch(messages, context=chunk)
        chunk, messages, unrecorded_good, done_rows = Chunk(), [], 0, []
        return batch

    for record in records:
        this_block = (record.index - 1) // batch_size
        if block is not None and this_block != block:
            yield finish()
            if stop():
                return
        block = this_block
        chunk.records += 1
        previous = state.get(record.line)
        built = builder.build(record)
        if isinstance(built, str):
            if previous == RowState.BAD:
                chunk.still_bad += 1
            elif previous == RowState.DONE:
                chunk.already_done += 1  # the CSV changed since; its row was sent
            else:
                chunk.bad.append((record, built))
            continue
        if previous == RowState.DONE:
            chunk.already_done += 1
            done_rows.append((record.index, record, built))
            continue
        if previous == RowState.NONE:
            unrecorded_good += 1
        chunk.sent.append(record)
        chunk.record.append(True)
        messages.append(built)
    if block is not None and not stop():
        yield finish()


# -- tallying -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts of a run, and the first problem rows with their line numbers."""

    records: int = 0
    accepted: int = 0
    refused: Counter[tuple[int, str]] = field(default_factory=Counter)
    bad: int = 0
    already_done: int = 0
    still_bad: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    problem_count: int = 0
    requests: int = 0
    max_problems: int = 20
    # Problem rows by kind of reason (REASON_*), every one counted.
    reasons: Counter[str] = field(default_factory=Counter)

    def problem(self, line: int, text: str, reason: str = "refused") -> None:
        self.problem_count += 1
        self.reasons[reason] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append((line, text))

    @property
    def retryable(self) -> int:
        """Rows refused for a reason that may pass (1004, 1005): --resume sends them again."""
        return sum(count for (code, _), count in self.refused.items() if code in RETRYABLE_ROW_CODES)

    @property
    def processed(self) -> int:
        return self.accepted + sum(self.refused.values()) + self.bad + self.already_done + self.still_bad

    def rows_of(self, outcome: BatchOutcome) -> list[list[Any]]:
        """Counts a successful outcome and returns its rows for the results file, in line
        order."""
        chunk: Chunk = outcome.batch.context
        assert outcome.results is not None
        if outcome.batch.messages:
            self.requests += 1
        rows: list[tuple[int, list[Any]]] = []
        for record, result, write in zip(chunk.sent, outcome.results, chunk.record):
            if not write:
                continue
            if result.ok:
                self.accepted += 1
            else:
                self.refused[(result.code, _headline(result.description))] += 1
                self.problem(record.line, f"{result.code} {result.description}")
            rows.append((record.line, result_row(record, result)))
        for record, reason in chunk.bad:
            self.bad += 1
            self.problem(record.line, reason, reason_of(reason))
            rows.append((record.line, bad_row(record, reason)))
        self.already_done += chunk.already_done
        self.still_bad += chunk.still_bad
        rows.sort(key=lambda item: item[0])
        return [row for _, row in rows]


def _headline(description: str) -> str:
    """The table's text of a description, without the detail after the first full stop."""
    head, _, _ = description.partition(". ")
    return head.strip() or description


# -- dry run ---------------------------------------------------------------------------------------


@dataclass
class NetworkEstimate:
    name: str
    messages: int = 0
    parts: int = 0
    cost_hundredths: int = 0


@dataclass
class Estimate:
    """What a send would do according to the local network table: per network, messages,
    parts and cost (an estimate: the provider's own table and prices decide). With the
    provider asked (`checked`), rows whose number is on the partner's opt-out list are
    counted in `opted_out` instead (they would get 1011 and cost nothing), and on a
    promotional shortcode each message is counted with its network's opt-out footer
    (`footer_parts`: the parts the footers add; `promotional` None: the provider did not say)."""

    networks: dict[int, NetworkEstimate] = field(default_factory=dict)
    encodings: Counter[str] = field(default_factory=Counter)
    tally: Tally = field(default_factory=Tally)
    checked: bool = False
    opted_out: int = 0
    opted_out_lines: list[tuple[int, str]] = field(default_factory=list)
    promotional: bool | None = None
    footer_parts: int = 0

    @property
    def messages(self) -> int:
        return sum(n.messages for n in self.networks.values())

    @property
    def parts(self) -> int:
        return sum(n.parts for n in self.networks.values())

    @property
    def cost_hundredths(self) -> int:
        return sum(n.cost_hundredths for n in self.networks.values())


# Asked with up to OPT_OUT_CHECK_BATCH numbers as the CSV gives them; answers those on the list
# and the shortcode's footers (the client's `check_optout`).
OptOutCheck = Callable[[list[str]], OptOutAnswer]
OPT_OUT_CHECK_BATCH = 1000


@dataclass(slots=True)
class _Sendable:
    line: int
    mobile: str
    network: Any
    message: str
    parts: int
    encoding: Encoding


def estimate(
    records: Iterable[Record], builder: RowBuilder, table: Any, state: ResumeState, max_parts: int = 6, opted_out: OptOutCheck | None = None
) -> Estimate:
    """`table` is a smsgw.domain.networks.NetworkTable (normalise + network_of); `opted_out`
    asks the provider which numbers are on the partner's opt-out list, and the footers of a
    promotional shortcode."""
    result = Estimate(checked=opted_out is not None)
    tally = result.tally
    pending: list[_Sendable] = []

    def count(rows: list[_Sendable]) -> None:
        answer = opted_out([row.mobile for row in rows]) if opted_out is not None else OptOutAnswer([])
        listed = set(answer.opted_out)
        result.promotional = answer.promotional
        footers = answer.footers or {}
        for row in rows:
            if row.mobile in listed:
                result.opted_out += 1
                if len(result.opted_out_lines) < tally.max_problems:
                    result.opted_out_lines.append((row.line, row.mobile))
                continue
            encoding, parts = row.encoding, row.parts
            footer = footers.get(row.network.id)
            if footer:
                # As acceptance does: the footer is part of the text, so of its parts and price.
                encoding, parts = count_parts(with_footer(row.message, footer))
                if parts > max_parts:
                    tally.bad += 1
                    tally.problem(row.line, f"message with the opt-out footer needs {parts} parts, the limit is {max_parts}", REASON_TOO_LONG)
                    continue
                result.footer_parts += parts - row.parts
            entry = result.networks.get(row.network.id)
            if entry is None:
                entry = result.networks[row.network.id] = NetworkEstimate(row.network.name)
            entry.messages += 1
            entry.parts += parts
            entry.cost_hundredths += parts * row.network.price_cents
            result.encodings["GSM-7" if encoding is Encoding.GSM7 else "UCS-2"] += 1

    for record in records:
        tally.records += 1
        if state.get(record.line) == RowState.DONE:
            tally.already_done += 1
            continue
        built = builder.build(record)
        if isinstance(built, str):
            tally.bad += 1
            tally.problem(record.line, built, reason_of(built))
            continue
        msisdn = table.normalise(str(built.mobile))
        if msisdn is None:
            tally.bad += 1
            tally.problem(record.line, f"invalid mobile number {str(built.mobile)[:24]!r}", REASON_BAD_NUMBER)
            continue
        network = table.network_of(msisdn)
        if network is None:
            tally.bad += 1
            tally.problem(record.line, f"{msisdn.digits}: no network of the local table serves this number", REASON_UNKNOWN_NETWORK)
            continue
        encoding, parts = count_parts(built.message)
        if parts > max_parts:
            tally.bad += 1
            tally.problem(record.line, f"message needs {parts} parts; the limit is {max_parts}", REASON_TOO_LONG)
            continue
        pending.append(_Sendable(record.line, str(built.mobile), network, built.message, parts, encoding))
        if opted_out is None or len(pending) >= OPT_OUT_CHECK_BATCH:
            count(pending)
            pending = []
    if pending:
        count(pending)
    return result
