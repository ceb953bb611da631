"""Per-partner controls over a real server: IP allow-lists answer exactly as a wrong key does,
and a rate limit refuses a request whole with 429 before anything is charged."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from smsgw.api.controls import client_address
from smsgw.store import accounts

from ..helpers import DEFAULT_KEY, Gateway, LiveServer, bulk, entry, make_settings

SENDBULK = "/api/services/sendbulk"
BALANCE = "/api/services/getbalance"


def allow(gateway: Gateway, partner_id: str, networks: str | None) -> None:
    gateway.operator._with_store(lambda store: store.write(accounts.set_allowed_ips, partner_id, networks))


def limit(gateway: Gateway, partner_id: str, mps: int | None) -> None:
    gateway.operator._with_store(lambda store: store.write(accounts.set_rate_limit, partner_id, mps))


def answers(gateway: Gateway, url: str | None = None, key: str = DEFAULT_KEY, headers: dict | None = None) -> list[httpx.Response]:
    base = url or gateway.url
    return [
        gateway.client.post(base + BALANCE, json={"apikey": key, "partnerID": "p1"}, headers=headers),
        gateway.client.post(base + SENDBULK, json=bulk(entry(key=key)), headers=headers),
        gateway.client.post(base + "/api/services/getdlr", json={"apikey": key, "partnerID": "p1", "messageID": "1"}, headers=headers),
    ]


def same(a: list[httpx.Response], b: list[httpx.Response]) -> bool:
    return [(r.status_code, r.content, r.headers.get("content-type")) for r in a] == [
        (r.status_code, r.content, r.headers.get("content-type")) for r in b
    ]


def test_a_request_from_outside_the_allow_list_gets_the_wrong_keys_bytes(gateway: Gateway):
    wrong_key = answers(gateway, key="wrong-key-0123456789abc")
    allow(gateway, "p1", "10.0.0.0/8,192.0.2.7/32")
    outside = answers(gateway)
    assert same(outside, wrong_key) and b"1006" in outside[0].content
    assert gateway.operator.balance("p1") == 1000_00
    allow(gateway, "p1", "10.0.0.0/8,127.0.0.0/8")
    assert gateway.post(BALANCE, {"apikey": DEFAULT_KEY, "partnerID": "p1"}).json()["response-code"] == 200
    allow(gateway, "p1", None)
    assert gateway.post(BALANCE, {"apikey": DEFAULT_KEY, "partnerID": "p1"}).json()["response-code"] == 200


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(gateway: Gateway):
    allow(gateway, "p1", "203.0.113.7")
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    wrong_key = answers(gateway, key="wrong-key-0123456789abc", headers=forwarded)
    assert same(answers(gateway, headers=forwarded), wrong_key)  # the peer 127.0.0.1 is no proxy here
    behind_proxy = make_settings(gateway.server.settings.database_url.raw, SMSGW_TRUSTED_PROXIES="127.0.0.1/32")
    with LiveServer(behind_proxy) as proxied:
        ok = gateway.client.post(proxied.url + BALANCE, json={"apikey": DEFAULT_KEY, "partnerID": "p1"}, headers=forwarded).json()
        assert ok["response-code"] == 200
        # The client wrote the left entry itself; the proxy appended the real one.
        spoofed = {"X-Forwarded-For": "203.0.113.7, 198.51.100.1"}
        assert same(answers(gateway, proxied.url, headers=spoofed), answers(gateway, proxied.url, key="wrong-key-0123456789abc", headers=spoofed))


def _scope(peer: str, *forwarded: str) -> dict:
    return {"client": (peer, 5000), "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}


@pytest.mark.parametrize(
    ("scope", "trusted", "expected"),
    [
        (_scope("192.0.2.1"), "", "192.0.2.1"),
        (_scope("192.0.2.1", "203.0.113.7"), "", "192.0.2.1"),
        (_scope("10.0.0.2", "203.0.113.7"), "10.0.0.0/8", "203.0.113.7"),
        (_scope("10.0.0.2", "1.1.1.1, 203.0.113.7, 10.0.0.5"), "10.0.0.0/8", "203.0.113.7"),
        (_scope("10.0.0.2", "1.1.1.1", "203.0.113.7"), "10.0.0.0/8", "203.0.113.7"),
        (_scope("10.0.0.2", "10.0.0.9"), "10.0.0.0/8", "10.0.0.9"),
        (_scope("10.0.0.2"), "10.0.0.0/8", "10.0.0.2"),
        (_scope("10.0.0.2", "not-an-address"), "10.0.0.0/8", None),
        (_scope("::ffff:192.0.2.1"), "", "192.0.2.1"),
        (_scope("::1", "[2001:db8::1]"), "::1/128", "2001:db8::1"),
        ({"client": None, "headers": []}, "", None),
    ],
    ids=[
        "peer",
        "untrusted-peer-ignores-header",
        "proxy",
        "rightmost-untrusted",
        "several-headers",
        "all-trusted",
        "proxy-without-header",
        "garbage",
        "v4-mapped",
        "ipv6",
        "no-peer",
    ],
)
def test_client_address(scope, trusted, expected):
    networks = tuple(ipaddress.ip_network(n) for n in trusted.split(",") if n)
    found = client_address(scope, networks)
    assert (str(found) if found is not None else None) == expected


def test_over_the_rate_limit_a_request_is_refused_whole_with_429_and_not_charged(gateway: Gateway):
    limit(gateway, "p1", 1)  # a full bucket lets one request through, and it owes the rest
    first = gateway.post(SENDBULK, bulk(*[entry(f"07120000{i:02d}") for i in range(5)]))
    assert [r["response-code"] for r in first.json()["responses"]] == [200] * 5
    refused = gateway.post(SENDBULK, bulk(entry("0712000099")))
    assert refused.status_code == 429 and refused.headers["retry-after"] in ("4", "5")
    assert refused.content == b'{"response-code":1010,"response-description":"Unsupported request type. rate limit of 1 messages per second"}'
    assert gateway.operator.balance("p1") == 1000_00 - 500
    assert gateway.operator.sql("SELECT count(*) FROM messages") == [(5,)]
    limit(gateway, "p1", None)
    assert gateway.post(SENDBULK, bulk(entry("0712000099"))).json()["responses"][0]["response-code"] == 200
    assert gateway.operator.sql("SELECT count(*) FROM rate_buckets") == [(0,)]
