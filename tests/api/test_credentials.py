"""Credentials under attack: guessing never locks out the right key, floods of unknown partner
ids never delay a real one, wrong keys are throttled per address and per partner id, and
hashes of earlier versions keep working and are upgraded."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets

import httpx
import pytest

from smsgw.api.guard import FAILURES_PER_WINDOW
from smsgw.domain.apikeys import KeyHasher, WeakApiKey, check_operator_key

from ..helpers import DEFAULT_KEY, Gateway, LiveServer, make_settings

BALANCE = "/api/services/getbalance"


def old_scrypt_hash(key: str) -> str:
    """A hash as earlier versions stored it (scrypt N=2**14, r=8, p=1, 16-byte salt)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${_b64(salt)}${_b64(digest)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def stored_hash(gateway: Gateway, partner_id: str) -> str:
    return gateway.operator.sql("SELECT api_key_hash FROM partners WHERE id = :id", {"id": partner_id})[0][0]


def client_from(address: str) -> httpx.Client:
    """A client whose requests come from `address` (any 127.x address is loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_fifty_wrong_keys_then_the_right_key_passes(gateway: Gateway):
    # A fresh server: the right key has never been verified by this process.
    wrong = [gateway.post(BALANCE, {"partnerID": "p1", "apikey": f"guess-{n:020d}"}) for n in range(50)]
    assert all(w.json()["response-code"] == 1006 for w in wrong)
    assert [w.status_code for w in wrong[:FAILURES_PER_WINDOW]] == [200] * FAILURES_PER_WINDOW
    assert all(w.status_code == 429 and int(w.headers["Retry-After"]) >= 1 for w in wrong[FAILURES_PER_WINDOW:])
    assert "too many failed attempts" in wrong[-1].json()["response-description"]
    right = gateway.post(BALANCE, {"partnerID": "p1", "apikey": DEFAULT_KEY})
    assert right.status_code == 200 and right.json()["response-code"] == 200
    # Still throttled for wrong keys, still open for the right one, in any order.
    assert gateway.post(BALANCE, {"partnerID": "p1", "apikey": "guess-again-000000000"}).status_code == 429
    assert gateway.post(BALANCE, {"partnerID": "p1", "apikey": DEFAULT_KEY}).json()["response-code"] == 200


@pytest.mark.parametrize("hash_form", ["current", "earlier scrypt"])
def test_a_flood_of_random_partner_ids_never_delays_a_real_partner(gateway: Gateway, hash_form: str):
    gateway.operator.partner("p2", key="p2-key-0123456789abcdef")
    if hash_form == "earlier scrypt":
        gateway.operator.sql("UPDATE partners SET api_key_hash = :h WHERE id = 'p2'", {"h": old_scrypt_hash("p2-key-0123456789abcdef")})

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            flood = [
                client.post(gateway.url + BALANCE, json={"partnerID": f"r{secrets.token_hex(6)}", "apikey": secrets.token_hex(16)})
                for _ in range(200)
            ]
            real = client.post(gateway.url + BALANCE, json={"partnerID": "p2", "apikey": "p2-key-0123456789abcdef"})
            answers = await asyncio.gather(*flood[:100], real, *flood[100:])
            return [*answers[:100], *answers[101:]], answers[100]

    flood, real = asyncio.run(scenario())
    assert real.status_code == 200 and real.json()["response-code"] == 200 and real.json()["partner-id"] == "p2"
    assert {a.json()["response-code"] for a in flood} == {1006}
    # All from one address: the first few are plain 1006, the rest are throttled.
    assert sum(a.status_code == 200 for a in flood) == FAILURES_PER_WINDOW


def test_wrong_keys_from_one_address_get_429_while_another_address_passes(gateway: Gateway):
    with client_from("127.0.0.2") as attacker, client_from("127.0.0.1") as partner:
        # Different unknown partner ids each time: only the address ties them together.
        answers = [
            attacker.post(gateway.url + BALANCE, json={"partnerID": f"ghost{n}", "apikey": "wrong-key-0000000000"})
            for n in range(FAILURES_PER_WINDOW + 3)
        ]
        assert [a.status_code for a in answers] == [200] * FAILURES_PER_WINDOW + [429] * 3
        assert all(a.json()["response-code"] == 1006 for a in answers)
        assert int(answers[-1].headers["Retry-After"]) >= 1
        # Another address: the right key passes, and a wrong key is an ordinary 1006.
        right = partner.post(gateway.url + BALANCE, json={"partnerID": "p1", "apikey": DEFAULT_KEY})
        assert right.status_code == 200 and right.json()["response-code"] == 200
        wrong = partner.post(gateway.url + BALANCE, json={"partnerID": "ghost0", "apikey": "wrong-key-0000000000"})
        assert wrong.status_code == 200 and wrong.json()["response-code"] == 1006
        # The throttled address itself is still never refused a correct key.
        own = attacker.post(gateway.url + BALANCE, json={"partnerID": "p1", "apikey": DEFAULT_KEY})
        assert own.status_code == 200 and own.json()["response-code"] == 200


def test_a_stored_scrypt_hash_verifies_and_is_upgraded(gateway: Gateway):
    old = old_scrypt_hash(DEFAULT_KEY)
    gateway.operator.sql("UPDATE partners SET api_key_hash = :h WHERE id = 'p1'", {"h": old})
    assert gateway.post(BALANCE, {"partnerID": "p1", "apikey": "wrong-key-0000000000"}).json()["response-code"] == 1006
    assert stored_hash(gateway, "p1") == old  # a wrong key changes nothing
    ok = gateway.post(BALANCE, {"partnerID": "p1", "apikey": DEFAULT_KEY})
    assert ok.json()["response-code"] == 200
    upgraded = stored_hash(gateway, "p1")
    assert upgraded.startswith("hmac-sha256$") and DEFAULT_KEY not in upgraded
    assert gateway.post(BALANCE, {"partnerID": "p1", "apikey": DEFAULT_KEY}).json()["response-code"] == 200
    assert gateway.post(BALANCE, {"partnerID": "p1", "apikey": "wrong-key-0000000000"}).json()["response-code"] == 1006


def test_concurrent_first_checks_of_a_scrypt_hash_all_pass(gateway: Gateway):
    gateway.operator.sql("UPDATE partners SET api_key_hash = :h WHERE id = 'p1'", {"h": old_scrypt_hash(DEFAULT_KEY)})

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(gateway.url + BALANCE, json={"partnerID": "p1", "apikey": DEFAULT_KEY}) for _ in range(20)))

    assert [a.json()["response-code"] for a in asyncio.run(scenario())] == [200] * 20
    assert stored_hash(gateway, "p1").startswith("hmac-sha256$")


def test_keys_hashed_under_the_store_secret_keep_working_once_a_secret_is_configured(gateway: Gateway, settings):
    before = stored_hash(gateway, "p1")
    configured = make_settings(settings.database_url.raw, SMSGW_API_KEY_SECRET="operator-chosen-secret-0123456789abcdef")
    with LiveServer(configured) as server, httpx.Client(timeout=30) as client:
        assert client.post(server.url + BALANCE, json={"partnerID": "p1", "apikey": DEFAULT_KEY}).json()["response-code"] == 200
        after = stored_hash(gateway, "p1")
        assert after != before and after.startswith("hmac-sha256$")
        assert after.split("$")[1] != before.split("$")[1]  # now under the configured secret
        assert client.post(server.url + BALANCE, json={"partnerID": "p1", "apikey": DEFAULT_KEY}).json()["response-code"] == 200
    # A process without the configured secret cannot check a hash made under it.
    assert gateway.post(BALANCE, {"partnerID": "p1", "apikey": DEFAULT_KEY}).json()["response-code"] == 1006


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("", id="empty"),
        pytest.param("hmac-sha256$", id="no-digest"),
        pytest.param("hmac-sha256$000000000000$AAAA", id="unknown-secret"),
        pytest.param("hmac-sha256$ID$not base64!", id="bad-base64"),
        pytest.param("md5$abc", id="unknown-form"),
    ],
)
def test_malformed_stored_hashes_never_verify(stored: str):
    hasher = KeyHasher("a-secret-of-at-least-thirty-two-characters")
    stored = stored.replace("ID", hasher.hash("x").split("$")[1])
    assert hasher.verify(DEFAULT_KEY, stored) is False


def test_hashes_are_keyed_by_the_secret():
    one, two = KeyHasher("first-secret-0123456789abcdef0123456"), KeyHasher("second-secret-0123456789abcdef012345")
    assert one.verify(DEFAULT_KEY, one.hash(DEFAULT_KEY)) and two.verify(DEFAULT_KEY, two.hash(DEFAULT_KEY))
    assert one.hash(DEFAULT_KEY) != two.hash(DEFAULT_KEY)
    assert not two.verify(DEFAULT_KEY, one.hash(DEFAULT_KEY))
    assert not one.verify(DEFAULT_KEY + "x", one.hash(DEFAULT_KEY))


@pytest.mark.parametrize(
    "key, reason",
    [
        pytest.param("a1b2c3d4e5f6g7h8i9j0k1", "24 to 128 characters", id="too-short"),
        pytest.param("a1b2c3d4e5" * 13, "24 to 128 characters", id="too-long"),
        pytest.param("correct horse battery staple", "may contain only", id="spaces"),
        pytest.param("key&with=query+characters01", "may contain only", id="query-characters"),
        pytest.param("ключ-0123456789abcdefghijkl", "may contain only", id="non-ascii"),
        pytest.param("abababababababababababab", "different characters", id="pattern"),
    ],
)
def test_weak_operator_keys_are_refused(key: str, reason: str):
    with pytest.raises(WeakApiKey, match=reason):
        check_operator_key(key)
