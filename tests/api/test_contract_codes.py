"""Every response code of the contract's table, reached over a real HTTP server.

The scenarios are keyed by the code table itself (`smsgw.domain.codes.Code`): a code added to
the table without a scenario here fails `test_every_code_has_a_scenario`.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from smsgw.domain.codes import DESCRIPTIONS, Code

from ..faults import make_partners_unreadable, refuse_messages_to, write_lock_held
from ..helpers import DEFAULT_KEY, Gateway, LiveServer, Operator, bulk, entry, make_settings, warm_up


def send(gw: Gateway, *entries, **kw) -> httpx.Response:
    return gw.post("/api/services/sendbulk", bulk(*entries), **kw)


def scenario_success(gw: Gateway):
    return send(gw, entry())


def scenario_invalid_sender(gw: Gateway):
    gw.operator.partner("other", shortcode="OTHER")
    return send(gw, entry(shortcode="OTHER"))


def scenario_network_not_allowed(gw: Gateway):
    # 0747... is a JTL number: valid in Kenya, but JTL is not in the network table.
    return send(gw, entry(mobile="0747123456"))


def scenario_invalid_mobile(gw: Gateway):
    return send(gw, entry(mobile="12345"))


def scenario_low_credit(gw: Gateway):
    gw.operator.partner("poor", credits=50, shortcode="POOR")
    return send(gw, entry(partner="poor", shortcode="POOR"))


def scenario_message_system_error(gw: Gateway):
    # A real database fault while storing: the messages table refuses this one number.
    refuse_messages_to(gw.operator, "254712000999")
    return send(gw, entry(mobile="0712000999"))


def scenario_recipient_opted_out(gw: Gateway):
    gw.operator.sql("INSERT INTO optouts (partner_id, shortcode, msisdn, source, created_at) VALUES ('p1', 'SC1', '254712000998', 'operator', 0)")
    return send(gw, entry(mobile="0712000998"))


def scenario_invalid_credentials(gw: Gateway):
    return send(gw, entry(key="wrong-key-0000000000"))


def scenario_request_system_error(gw: Gateway):
    # Data the gateway cannot make sense of (not the store being away).
    make_partners_unreadable(gw.operator)
    return gw.post("/api/services/getbalance", {"partnerID": "p1", "apikey": DEFAULT_KEY})


def scenario_no_delivery_report(gw: Gateway):
    return gw.post("/api/services/getdlr", {"partnerID": "p1", "apikey": DEFAULT_KEY, "messageID": "99999999"})


def scenario_unsupported_data_type(gw: Gateway):
    return send(gw, entry(message=""))


def scenario_unsupported_request_type(gw: Gateway):
    return gw.post("/api/services/sendbulk", content=b"this is not json", headers={"content-type": "application/json"})


def scenario_too_many_messages(gw: Gateway):
    return send(gw, *[entry() for _ in range(1001)])


def scenario_too_many_contacts(gw: Gateway):
    numbers = ",".join(f"0712{i:06d}" for i in range(1001))
    return gw.post(
        "/api/services/sendsms",
        {"partnerID": "p1", "apikey": DEFAULT_KEY, "shortcode": "SC1", "message": "hi", "mobile": numbers},
    )


def scenario_try_again_later(gw: Gateway):
    # Another session holds a lock the gateway needs longer than the gateway waits.
    with write_lock_held(gw.server.settings):
        return send(gw, entry())


def scenario_no_partner_id(gw: Gateway):
    item = entry()
    del item["partnerID"]
    return send(gw, item)


def scenario_no_api_key(gw: Gateway):
    item = entry()
    del item["apikey"]
    return send(gw, item)


def scenario_details_not_found(gw: Gateway):
    return gw.get("/api/admin/partners/nobody", headers={"authorization": "Bearer admin-token-for-tests"})


REQUEST, ENTRY = "request", "entry"

# code -> (scenario, whether the code comes as a bare object or inside `responses`)
SCENARIOS = {
    Code.SUCCESS: (scenario_success, ENTRY),
    Code.INVALID_SENDER_ID: (scenario_invalid_sender, REQUEST),
    Code.NETWORK_NOT_ALLOWED: (scenario_network_not_allowed, ENTRY),
    Code.INVALID_MOBILE: (scenario_invalid_mobile, ENTRY),
    Code.LOW_CREDIT: (scenario_low_credit, ENTRY),
    Code.MESSAGE_SYSTEM_ERROR: (scenario_message_system_error, ENTRY),
    Code.INVALID_CREDENTIALS: (scenario_invalid_credentials, REQUEST),
    Code.REQUEST_SYSTEM_ERROR: (scenario_request_system_error, REQUEST),
    Code.NO_DELIVERY_REPORT: (scenario_no_delivery_report, REQUEST),
    Code.UNSUPPORTED_DATA_TYPE: (scenario_unsupported_data_type, ENTRY),
    Code.UNSUPPORTED_REQUEST_TYPE: (scenario_unsupported_request_type, REQUEST),
    Code.RECIPIENT_OPTED_OUT: (scenario_recipient_opted_out, ENTRY),
    Code.TOO_MANY_MESSAGES: (scenario_too_many_messages, REQUEST),
    Code.TOO_MANY_CONTACTS: (scenario_too_many_contacts, REQUEST),
    Code.TRY_AGAIN_LATER: (scenario_try_again_later, REQUEST),
    Code.NO_PARTNER_ID: (scenario_no_partner_id, REQUEST),
    Code.NO_API_KEY: (scenario_no_api_key, REQUEST),
    Code.DETAILS_NOT_FOUND: (scenario_details_not_found, REQUEST),
}


def test_every_code_has_a_scenario():
    assert set(SCENARIOS) == set(Code)


@pytest.fixture
def contract_gateway(database_url):
    settings = make_settings(database_url, SMSGW_LOCK_TIMEOUT_MS="300", SMSGW_ADMIN_TOKEN="admin-token-for-tests")
    operator = Operator(settings)
    operator.partner("p1", shortcode="SC1")
    with LiveServer(settings) as server, httpx.Client(timeout=30) as client:
        yield Gateway(server, operator, client)


@pytest.mark.parametrize("code", list(Code), ids=lambda c: f"{int(c)}-{c.name}")
def test_code_is_reachable(contract_gateway: Gateway, code: Code):
    scenario, level = SCENARIOS[code]
    response = scenario(contract_gateway)
    assert response.status_code == 200
    body = response.json()
    if level == REQUEST:
        assert set(body) == {"response-code", "response-description"}, body
        found = body
    else:
        assert set(body) == {"responses"}, body
        (found,) = body["responses"]
    assert found["response-code"] == int(code)
    assert found["response-description"].startswith(DESCRIPTIONS[code])


def test_nothing_is_charged_or_stored_when_the_store_refuses_a_batch(contract_gateway: Gateway):
    before = contract_gateway.operator.balance("p1")
    response = scenario_message_system_error(contract_gateway).json()
    assert response["responses"][0]["response-code"] == 1005
    # The same request with a good number beside the refused one: all or nothing.
    both = send(contract_gateway, entry(mobile="0712000999"), entry(mobile="0712000111"), entry(mobile="123")).json()["responses"]
    assert [r["response-code"] for r in both] == [1005, 1005, 1003]
    assert contract_gateway.operator.balance("p1") == before
    assert contract_gateway.operator.sql("SELECT count(*) FROM messages") == [(0,)]


def test_store_unavailable_accepts_nothing_and_recovers(contract_gateway: Gateway):
    before = contract_gateway.operator.balance("p1")
    assert scenario_try_again_later(contract_gateway).json()["response-code"] == 4090
    assert contract_gateway.operator.balance("p1") == before
    assert contract_gateway.operator.sql("SELECT count(*) FROM messages") == [(0,)]
    # Once the lock is gone the same request goes through.
    assert send(contract_gateway, entry()).json()["responses"][0]["response-code"] == 200


def test_a_commit_cut_off_is_checked_before_answering(postgres_url):
    """PostgreSQL: the connection dies during COMMIT. The gateway asks the store whether the
    batch landed before answering; here it did not, so 4090, and nothing is charged. (SQLite
    commits locally: a failed commit there is a rolled-back one.)"""
    settings = make_settings(postgres_url)
    operator = Operator(settings)
    operator.partner("p1", shortcode="SC1")
    operator.sql(
        "CREATE FUNCTION cut_commit() RETURNS trigger AS $$ BEGIN "
        "IF NEW.msisdn = '254712000777' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
    )
    operator.sql(
        "CREATE CONSTRAINT TRIGGER cut_commit AFTER INSERT ON messages DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cut_commit()"
    )
    before = operator.balance("p1")
    with LiveServer(settings) as server, httpx.Client(timeout=30) as client:
        gateway = Gateway(server, operator, client)
        answer = send(gateway, entry(mobile="0712000777")).json()
        assert answer["response-code"] == 4090
        assert operator.balance("p1") == before
        assert operator.sql("SELECT count(*) FROM messages") == [(0,)]
        # The next batch goes through on a fresh connection.
        assert send(gateway, entry()).json()["responses"][0]["response-code"] == 200


@pytest.fixture
def sqlite_gateway(tmp_path):
    """Group commit of accepting requests is SQLite's (one writer, one fsync per commit)."""
    settings = make_settings(f"sqlite:///{tmp_path / 'smsgw.db'}")
    operator = Operator(settings)
    operator.partner("p1", shortcode="SC1")
    with LiveServer(settings) as server, httpx.Client(timeout=30) as client:
        yield Gateway(server, operator, client)


def _sends_held_in_one_group(gw: Gateway, first: dict, rest: list[dict]) -> tuple[dict, list[dict]]:
    """sendsms `first`, then every request of `rest` while the first waits for the store's
    write lock (held by another session): on SQLite the rest queue and go into one commit
    together once the lock is released. Returns the answers, and checks the grouping."""
    warm_up(gw, [first, *rest])
    groups = gw.server.app.state.store.accept_groups
    before = (groups.groups, groups.items)
    url = gw.url + "/api/services/sendsms"

    async def fire() -> tuple[httpx.Response, list[httpx.Response]]:
        limits = httpx.Limits(max_connections=len(rest) + 1)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            with write_lock_held(gw.server.settings):
                blocked = asyncio.create_task(client.post(url, data=first))
                await asyncio.sleep(0.5)
                queued = [asyncio.create_task(client.post(url, data=f)) for f in rest]
                await asyncio.sleep(1.5)
                assert not blocked.done() and not any(t.done() for t in queued)
            return await blocked, list(await asyncio.gather(*queued))

    blocked, queued = asyncio.run(fire())
    assert (groups.groups - before[0], groups.items - before[1]) == (2, len(rest) + 1), "the queued requests did not share one commit"
    return blocked.json()["responses"][0], [r.json()["responses"][0] for r in queued]


def _one_number(mobile: str, partner: str = "p1", shortcode: str = "SC1") -> dict:
    return {"partnerID": partner, "apikey": DEFAULT_KEY, "shortcode": shortcode, "message": "grouped", "mobile": mobile}


def test_a_refused_message_fails_alone_in_its_group(sqlite_gateway: Gateway):
    """One request's row refused by the database inside a shared commit: it alone gets 1005
    (not stored, not charged); the requests beside it, of its partner and of another, are
    stored and charged."""
    gw = sqlite_gateway
    gw.operator.partner("p2", shortcode="SC2")
    refuse_messages_to(gw.operator, "254712000999")
    rest = (
        [_one_number(f"07120001{i:02d}") for i in range(4)]
        + [_one_number("0712000999")]
        + [_one_number(f"07120002{i:02d}", "p2", "SC2") for i in range(4)]
    )
    first, answers = _sends_held_in_one_group(gw, _one_number("0712000300"), rest)
    assert first["response-code"] == 200
    assert [a["response-code"] for a in answers] == [200] * 4 + [1005] + [200] * 4
    assert answers[4]["response-description"].endswith("not stored, not charged")
    stored = {str(row[0]) for row in gw.operator.sql("SELECT id FROM messages")}
    assert stored == {a["messageid"] for a in [first, *answers] if a["response-code"] == 200}
    assert gw.operator.balance("p1") == 1000_00 - 5 * 100
    assert gw.operator.balance("p2") == 1000_00 - 4 * 100


def test_a_commit_that_fails_fails_exactly_the_requests_it_held(sqlite_gateway: Gateway):
    """SQLite: the COMMIT of a group itself fails (a deferred constraint, checked only at
    COMMIT). A local commit that fails is rolled back, so every request of that group, and only
    those, is answered not stored and not charged; the request before it and the one after it
    are stored."""
    gw = sqlite_gateway
    gw.operator.sql("CREATE TABLE cut_parent (id TEXT PRIMARY KEY)")
    gw.operator.sql("CREATE TABLE cut_child (parent TEXT REFERENCES cut_parent (id) DEFERRABLE INITIALLY DEFERRED)")
    gw.operator.sql(
        "CREATE TRIGGER cut_commit AFTER INSERT ON messages WHEN NEW.msisdn = '254712000777' BEGIN INSERT INTO cut_child VALUES ('none'); END"
    )
    before = gw.operator.balance("p1")
    rest = [_one_number(f"07120001{i:02d}") for i in range(3)] + [_one_number("0712000777")] + [_one_number(f"07120002{i:02d}") for i in range(3)]
    first, answers = _sends_held_in_one_group(gw, _one_number("0712000300"), rest)
    assert first["response-code"] == 200
    assert [a["response-code"] for a in answers] == [1005] * 7
    assert all(a["response-description"].endswith("not stored, not charged") for a in answers)
    after = gw.post("/api/services/sendsms", data=_one_number("0712000400")).json()["responses"][0]
    assert after["response-code"] == 200
    stored = {str(row[0]) for row in gw.operator.sql("SELECT id FROM messages")}
    assert stored == {first["messageid"], after["messageid"]}
    assert gw.operator.balance("p1") == before - 2 * 100
