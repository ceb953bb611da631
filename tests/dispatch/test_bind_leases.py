"""SMSC bind leases: one dispatcher per bind, even when a dispatcher is slow or cut off from
the store."""

from __future__ import annotations

import pytest

from smsgw.dispatch.dispatcher import DispatchSettings
from smsgw.store import binds
from smsgw.store.store import open_store

from ..faults import write_lock_held
from ..helpers import wait_for
from .conftest import Rig

TTL = 3_000
START = 1_800_000_000_000  # the clock in ms, as the dispatchers pass it
NAMES = ["a", "b", "c"]

# Each step: (owner, ms since START, the connections it holds after its round).
TIMELINES = [
    pytest.param([("d1", 0, {"a", "b", "c"})], id="alone-takes-all"),
    pytest.param([("d1", 0, {"a", "b", "c"}), ("d2", 100, set()), ("d1", 1_000, {"a", "b"})], id="newcomer-makes-the-holder-give-back"),
    pytest.param(
        [
            ("d1", 0, {"a", "b", "c"}),
            ("d2", 100, set()),
            ("d1", 1_000, {"a", "b"}),
            ("d2", 2_000, set()),
            ("d1", 3_000, {"a", "b"}),
            ("d1", 5_500, {"a", "b"}),
            ("d2", 1_000 + binds.RELEASE_GRACE_MS + TTL // 2 - 1, set()),
            ("d2", 1_000 + binds.RELEASE_GRACE_MS + TTL // 2 + 1, {"c"}),
        ],
        id="given-back-free-after-grace-and-margin",
    ),
    pytest.param([("d1", 0, {"a", "b", "c"}), ("d2", TTL + 1, set())], id="run-out-not-yet-taken"),
    pytest.param([("d1", 0, {"a", "b", "c"}), ("d2", TTL + TTL // 2 - 1, set())], id="run-out-within-margin"),
    pytest.param([("d1", 0, {"a", "b", "c"}), ("d2", TTL + TTL // 2 + 1, {"a", "b", "c"})], id="run-out-past-margin-taken"),
    pytest.param([("d1", 0, {"a", "b", "c"}), ("d1", TTL + 500, {"a", "b", "c"})], id="holder-late-but-untaken-keeps-them"),
]


@pytest.fixture
async def store(settings):
    store = open_store(settings)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("timeline", TIMELINES)
async def test_bind_lease_timeline(store, timeline):
    for owner, now, expected in timeline:
        plan = await store.write(binds.coordinate, owner, NAMES, START + now, TTL)
        assert set(plan.held) == expected, (owner, now)


async def test_a_dispatcher_that_cannot_renew_its_bind_lease_unbinds_and_binds_again(rig: Rig):
    """Cut off from the store, a dispatcher cannot know whether another has taken its bind
    lease over: it unbinds once the lease it last confirmed runs out, and binds again when
    the store answers."""
    async with rig.delivering(DispatchSettings(bind_lease_seconds=1.5)):
        await wait_for(lambda: rig.simulator.bound_sessions == 1, timeout=20)
        with write_lock_held(rig.settings, table="bind_leases"):
            await wait_for(lambda: rig.simulator.bound_sessions == 0, timeout=20)
        await wait_for(lambda: rig.simulator.bound_sessions == 1, timeout=20)
