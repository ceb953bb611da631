"""Pure parts of operations: metric labels and log lines."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from smsgw.logs import JsonFormatter, TextFormatter
from smsgw.metrics import command_status_label, endpoint_of


@pytest.mark.parametrize(
    ("path", "label"),
    [
        pytest.param("/api/services/sendbulk", "sendbulk", id="sendbulk"),
        pytest.param("/api/services/getdlr/", "getdlr", id="trailing-slash"),
        pytest.param("/api/services/unknown", "other", id="unknown-service"),
        pytest.param("/api/services/sendbulk/../../etc", "other", id="deeper-path"),
        pytest.param("/api/admin/partners/acme/topup", "admin", id="admin-without-partner-id"),
        pytest.param("/health/ready", "health", id="health"),
        pytest.param("/metrics", "metrics", id="metrics"),
        pytest.param("/docs", "other", id="docs"),
        pytest.param("/" + "x" * 5000, "other", id="long-garbage"),
    ],
)
def test_endpoint_labels_are_bounded(path: str, label: str):
    assert endpoint_of(path) == label


@pytest.mark.parametrize(
    ("status", "label"),
    [
        pytest.param(0, "0x00000000", id="ok"),
        pytest.param(0x58, "0x00000058", id="throttled"),
        pytest.param(0x400, "0x00000400", id="vendor-range"),
        pytest.param(0x4FF, "0x000004ff", id="vendor-range-end"),
        pytest.param(0x500, "other", id="past-reserved"),
        pytest.param(0xFFFFFFFF, "other", id="any-32-bit-value"),
        pytest.param(-1, "connector_error", id="connector-error"),
    ],
)
def test_command_status_labels_are_bounded(status: int, label: str):
    assert command_status_label(status) == label


def record_with_traceback() -> logging.LogRecord:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        return logging.LogRecord("smsgw.test", logging.ERROR, __file__, 1, "failed for %s", ("p1",), sys.exc_info())


@pytest.mark.parametrize("formatter", [pytest.param(TextFormatter(), id="text"), pytest.param(JsonFormatter(), id="json")])
def test_an_event_with_a_traceback_is_one_line(formatter: logging.Formatter):
    line = formatter.format(record_with_traceback())
    assert "\n" not in line and "failed for p1" in line and "ValueError" in line


def test_json_lines_carry_level_logger_and_exception():
    event = json.loads(JsonFormatter().format(record_with_traceback()))
    assert event["level"] == "error" and event["logger"] == "smsgw.test" and event["message"] == "failed for p1"
    assert "broken\nacross lines" in event["exception"] and event["time"].endswith("Z")
