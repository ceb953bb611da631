"""The console's pure parts, table-driven: the chart's geometry, the search box, passwords and
the sign-in throttle."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from smsgw.api.guard import FAILURES_PER_WINDOW, FailureThrottle
from smsgw.console.charts import Bar, bar_chart, line_chart
from smsgw.console.operator_pages import route_rows
from smsgw.console.search import MessageQuery
from smsgw.domain.networks import KENYA, NetworkTable
from smsgw.domain.passwords import WeakPassword, check_password, hash_password, verify_password

from ..helpers import make_settings

NETWORKS = NetworkTable.from_mapping(KENYA)


@pytest.mark.parametrize(
    ("series", "points", "low", "high"),
    [
        ([], "", 0, 0),
        ([(1000, 500)], "0.0,50.0 100.0,50.0", 500, 500),
        ([(0, 0), (10, 100)], "0.0,100.0 100.0,100.0 100.0,0.0", 0, 100),
        ([(0, 100), (5, 0), (10, 50)], "0.0,0.0 50.0,0.0 50.0,100.0 100.0,100.0 100.0,50.0", 0, 100),
        ([(0, 7), (10, 7)], "0.0,50.0 100.0,50.0 100.0,50.0", 7, 7),
    ],
    ids=["empty", "one-point", "rising", "down-and-up", "flat"],
)
def test_line_chart_steps_through_the_points(series, points, low, high):
    chart = line_chart(series, width=100, height=100, margin=0)
    assert (chart.points, chart.low, chart.high) == (points, low, high)


@pytest.mark.parametrize(
    ("bars", "drawn"),
    [
        ([], []),
        ([("a", 0)], [Bar(1.0, 100.0, 98.0, 0.0, "a", 0)]),
        ([("a", 5), ("b", 10)], [Bar(1.0, 50.0, 48.0, 50.0, "a", 5), Bar(51.0, 0.0, 48.0, 100.0, "b", 10)]),
    ],
    ids=["empty", "all-zero", "scaled-to-the-highest"],
)
def test_bar_chart_scales_to_the_highest_bar(bars, drawn):
    assert bar_chart(bars, width=100, height=100) == drawn


@pytest.mark.parametrize(
    ("text", "message_id", "msisdn", "understood"),
    [
        ("", None, None, False),
        ("10000042", 10000042, None, True),
        ("0712345678", 712345678, "254712345678", True),
        ("+254712345678", None, "254712345678", True),
        ("  254712345678 ", 254712345678, "254712345678", True),
        ("1" * 19, None, None, False),
        ("hello", None, None, False),
        ("１２３", None, None, False),  # full-width digits are not an id
    ],
    ids=["empty", "id", "local-number-or-id", "international", "spaces", "too-long-for-an-id", "words", "full-width"],
)
def test_the_search_box_takes_ids_and_numbers(text, message_id, msisdn, understood):
    query = MessageQuery.parse(text, NETWORKS)
    assert (query.message_id, query.msisdn, query.understood) == (message_id, msisdn, understood)


@pytest.mark.parametrize(
    ("password", "problem"),
    [("short pass", "12 to 1024"), ("abababababababab", "5 different"), ("x" * 1025, "12 to 1024"), ("long enough \udc80 pw", "surrogate")],
    ids=["short", "few-characters", "too-long", "surrogate"],
)
def test_weak_passwords_are_refused(password, problem):
    with pytest.raises(WeakPassword, match=problem):
        check_password(password)


def test_a_password_hash_verifies_only_its_password_and_is_salted():
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first != second
    assert first.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", first) and verify_password("correct horse battery", second)
    assert not verify_password("correct horse batter", first)
    assert not verify_password("correct horse battery", None)  # no such account


def test_the_throttle_makes_even_the_right_password_wait_past_the_limit():
    throttle = FailureThrottle()
    for _ in range(FAILURES_PER_WINDOW - 1):
        throttle.refuse("alice", "192.0.2.1")
    assert throttle.waiting("alice", "192.0.2.1") == 0
    throttle.refuse("alice", "192.0.2.1")
    assert 0 < throttle.waiting("alice", "192.0.2.1") <= 61
    assert 0 < throttle.waiting("bob", "192.0.2.1") <= 61  # the address is over its limit too
    assert throttle.waiting("bob", "198.51.100.7") == 0


def _report(route: str, *, reported_at: int, accepted_recent: int = 0, networks: str | None = "1", state: str = "up") -> SimpleNamespace:
    return SimpleNamespace(
        route=route, kind="smpp", networks=networks, priority=1, weight=1, state=state, bound=True,
        accepted=accepted_recent, accepted_recent=accepted_recent, failovers=0, since=0, reported_at=reported_at,
    )  # fmt: skip


NOW = 1_000_000_000
LEASE_MS = make_settings("sqlite:///unused.db").bind_lease_seconds * 1000


@pytest.mark.parametrize(
    ("reports", "leases", "expected"),
    [
        pytest.param(
            [_report("a", reported_at=NOW, accepted_recent=30), _report("b", reported_at=NOW, accepted_recent=10)],
            {"a": ("d1", NOW + 1), "b": ("d2", NOW + 1)},
            {"a": ("up", "d1", 0.75), "b": ("up", "d2", 0.25)},
            id="shares-of-recent-traffic",
        ),
        pytest.param(
            [_report("a", reported_at=NOW, accepted_recent=30), _report("b", reported_at=NOW - LEASE_MS - 1, accepted_recent=90)],
            {"a": ("d1", NOW + 1), "b": ("d2", NOW - 1)},
            {"a": ("up", "d1", 1.0), "b": ("unknown", None, None)},
            id="a-holder-that-stopped-reporting",
        ),
        pytest.param(
            [_report("a", reported_at=NOW - 10 * LEASE_MS, state="down")],
            {},
            {"a": ("down", None, None)},
            id="left-down-by-a-clean-stop",
        ),
        pytest.param(
            [_report("a", reported_at=NOW, state="probing")],
            {},
            {"a": ("probing", None, None)},
            id="no-traffic-and-no-lease",
        ),
    ],
)
def test_route_rows(reports, leases, expected):
    rows = route_rows(reports, leases, make_settings("sqlite:///unused.db"), NOW)
    assert {row.name: (row.state, row.holder, row.share) for row in rows} == expected
    assert rows[0].networks == "Safaricom"
