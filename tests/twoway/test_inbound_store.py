"""Inbound messages in the store: decoding, assembly of parts in any order, the timeout for
parts that never come, routing and consent words; on both stores."""

from __future__ import annotations

import pytest

from smsgw.domain.encoding import Encoding, encode
from smsgw.store import inbound, optout
from smsgw.store.inbound import Consents, InboundPart, StoredInbound
from smsgw.store.store import Store

from ..helpers import Operator, make_settings

CONSENTS = Consents(frozenset({"STOP", "STOPALL"}), frozenset({"START"}))


@pytest.fixture
async def store(database_url):
    settings = make_settings(database_url)
    Operator(settings).partner("p1", shortcode="SC1")
    Operator(settings).partner("p2", shortcode="SC2")
    opened = Store.open(settings.database_url)
    await opened.prepare()
    yield opened
    await opened.close()


async def receive(store: Store, part: InboundPart, consents: Consents, now: int) -> StoredInbound | None:
    """The message a deliver_sm made whole, if any."""
    return (await store.write(inbound.receive, part, consents, now)).message


async def texts(store: Store) -> list[tuple]:
    return [(e.text, e.complete) for e in await store.read(inbound.inbox, "p1", 0, 100)]


@pytest.mark.parametrize(
    "data_coding, data, expected",
    [
        (0, encode("Habari {yako}", Encoding.GSM7), "Habari {yako}"),
        (3, "Café olé".encode("latin-1"), "Café olé"),
        (8, "Karibu 😀".encode("utf-16-be"), "Karibu 😀"),
    ],
    ids=["gsm7-with-escapes", "latin1", "ucs2-with-surrogates"],
)
async def test_single_part_messages_are_decoded(store: Store, data_coding, data, expected):
    stored = await receive(store, InboundPart("254712000001", "SC1", data_coding, data), CONSENTS, 1000)
    assert stored is not None and stored.partner_id == "p1"
    assert await texts(store) == [(expected, True)]


async def test_parts_in_any_order_assemble_once_even_when_a_part_comes_twice(store: Store):
    # A UCS-2 surrogate pair split between parts 1 and 2: bytes are joined before decoding.
    whole = "Asante 😀 sana".encode("utf-16-be")
    cut = 14  # inside the surrogate pair (bytes 14..17)
    pieces = [whole[:cut], whole[cut:20], whole[20:]]
    results = []
    for number in (3, 1, 1, 2):
        part = InboundPart("254712000002", "SC1", 8, pieces[number - 1], reference=9, total=3, number=number)
        results.append(await receive(store, part, CONSENTS, 1000 + number))
    assert results[:3] == [None, None, None] and results[3] is not None
    assert await texts(store) == [("Asante 😀 sana", True)]
    assert await store.read(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM inbound_parts WHERE message_id IS NULL").scalar()) == 0


async def test_parts_that_never_come_are_given_up_with_what_arrived(store: Store):
    first = InboundPart("254712000003", "SC1", 0, b"Hello ", reference=4, total=3, number=1)
    third = InboundPart("254712000003", "SC1", 0, b"world", reference=4, total=3, number=3)
    await receive(store, first, CONSENTS, 1000)
    await receive(store, third, CONSENTS, 2000)
    assert await store.write(inbound.assemble_stale, 2000, CONSENTS, 5000) == 0  # the newest part is not old enough
    assert await store.write(inbound.assemble_stale, 2001, CONSENTS, 5000) == 1
    assert await texts(store) == [("Hello world", False)]


async def test_routing_and_consent_on_shared_and_dedicated_shortcodes(store: Store):
    await store.write(optout.add_keyword, "22000", "NEWS", "p2", 0)
    with pytest.raises(ValueError, match="sender id of p1"):
        await store.write(optout.add_keyword, "SC1", "NEWS", "p2", 0)
    # "STOP NEWS" on the shared shortcode opts out of NEWS's partner, for that shortcode.
    stopped = await receive(store, InboundPart("254712000004", "22000", 0, b"STOP news"), CONSENTS, 1000)
    assert stopped.partner_id == "p2"
    assert await store.read(optout.listed, "p2", "22000", ["254712000004"]) == {"254712000004"}
    assert await store.read(optout.listed, "p2", "SC2", ["254712000004"]) == set()
    # STOPALL to a dedicated shortcode covers every shortcode of its owner, and START lifts it.
    await receive(store, InboundPart("254712000005", "SC1", 0, b"stopall!"), CONSENTS, 1000)
    assert await store.read(optout.listed, "p1", "OTHER", ["254712000005"]) == {"254712000005"}
    await receive(store, InboundPart("254712000005", "SC1", 0, b"Start"), CONSENTS, 1000)
    assert await store.read(optout.listed, "p1", "SC1", ["254712000005"]) == set()
    # Nobody's shortcode: kept, unrouted, and no list is touched.
    lost = await receive(store, InboundPart("254712000006", "99999", 0, b"STOP"), CONSENTS, 1000)
    assert lost.partner_id is None
    assert [e.text for e in await store.read(inbound.inbox, None, 0, 10)] == ["STOP"]
    assert len(await store.read(optout.entries, "p1", None)) == 0


async def test_what_the_smsc_sends_again_is_stored_once(store: Store):
    rules = Consents(CONSENTS.optout_keywords, CONSENTS.optin_keywords, duplicate_window_ms=60_000)
    hello = InboundPart("254712000007", "SC1", 0, b"Hello")
    first_hello = await receive(store, hello, rules, 1_000)
    assert first_hello is not None
    await store.write(inbound.mark_answered, [first_hello.id], 1_000)
    assert await receive(store, hello, rules, 30_000) is None  # its deliver_sm_resp was lost
    assert await receive(store, hello, rules, 61_001) is not None  # a minute on: a new message
    # The last part of a message already whole, sent again: no new message begins.
    first = InboundPart("254712000008", "SC1", 0, b"ab", reference=5, total=2, number=1)
    second = InboundPart("254712000008", "SC1", 0, b"cd", reference=5, total=2, number=2)
    await receive(store, first, rules, 1_000)
    assert (await receive(store, second, rules, 1_000)) is not None
    assert await receive(store, second, rules, 2_000) is None
    assert await store.write(inbound.assemble_stale, 700_000, rules, 700_000) == 0  # nothing left half-done
    assert [t for t, _ in await texts(store)] == ["Hello", "Hello", "abcd"]
    # The kept parts go once they are past the parts timeout.
    assert await store.read(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM inbound_parts").scalar()) == 0


HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    "answered, resent_after_ms, resend_is_new",
    [
        (False, 30_000, False),
        (False, HOUR_MS, False),
        (True, 30_000, False),
        (True, HOUR_MS, True),
    ],
    ids=["unanswered-resent-soon", "unanswered-resent-an-hour-later", "answered-resent-soon", "answered-then-sent-again-an-hour-later"],
)
async def test_a_resend_is_known_by_the_answer_the_smsc_is_owed(store: Store, answered, resent_after_ms, resend_is_new):
    rules = Consents(CONSENTS.optout_keywords, CONSENTS.optin_keywords, duplicate_window_ms=60_000)
    yes = InboundPart("254712000009", "SC1", 0, b"YES")
    first = await store.write(inbound.receive, yes, rules, 1_000)
    assert first.message is not None and first.answers == first.message.id
    if answered:
        await store.write(inbound.mark_answered, [first.message.id], 1_000)
    again = await store.write(inbound.receive, yes, rules, 1_000 + resent_after_ms)
    assert (again.message is not None) is resend_is_new
    if again.message is not None:
        assert again.answers == again.message.id
    else:  # a resend of an unanswered message is answered for it: its answer marks the stored one
        assert again.answers == (None if answered else first.message.id)
    if again.answers is not None:
        await store.write(inbound.mark_answered, [again.answers], 1_000 + resent_after_ms)
    # Once answered, the same text past the window is the subscriber's new message.
    later = await receive(store, yes, rules, 1_000 + resent_after_ms + 60_001)
    assert later is not None
    assert [t for t, _ in await texts(store)] == ["YES"] * (3 if resend_is_new else 2)
