"""Putting delivery together: SMSC connections from `--smsc` (or the built-in simulated
carrier), the dispatcher, and the callback sender, run for as long as a context lasts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..connectors.smpp.client import SmppConnector
from ..store.store import Store
from .dispatcher import Dispatcher, DispatchSettings, Lane
from .inbound import AutoReply, InboundForwarder, InboundReceiver
from .roller import Roller
from .routing import ConnectorConfig, RouteConfig, RouteError, UpstreamConfig, has_alternative, parse_route_url, routed_networks
from .webhooks import CallbackSender

log = logging.getLogger(__name__)

# How long a submit waits for its connection to bind before it is given back to the queue: a
# message whose network has another route goes there sooner.
BIND_WAIT_SECONDS = 30.0
BIND_WAIT_WITH_ALTERNATIVE_SECONDS = 3.0

SIMULATOR_NAME = "simulator"
SIMULATOR_SYSTEM_ID = "smsgw"
SIMULATOR_PASSWORD = "simulate"


@dataclass(frozen=True)
class DeliveryPlan:
    """The SMSC connections a process will bind, or the built-in simulated carrier."""

    connectors: tuple[RouteConfig, ...]
    simulated: bool

    @classmethod
    def from_urls(cls, urls: list[str], settings: Settings) -> DeliveryPlan:
        known = set(settings.networks.networks)
        configs = tuple(parse_route_url(url, known) for url in urls)
        names = [c.name for c in configs]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise RouteError(f"two --smsc connections share the name {sorted(duplicates)[0]}; give each a name=...")
        return cls(configs, simulated=not configs)

    def upstream_secrets(self) -> dict[str, str]:
        """Route name -> secret of the upstream routes whose delivery reports may be pushed to us."""
        return {c.name: c.secret for c in self.connectors if isinstance(c, UpstreamConfig) and c.secret}

    def routed_networks(self, settings: Settings) -> frozenset[int]:
        table = set(settings.networks.networks)
        if self.simulated:
            return frozenset(table)
        return routed_networks(list(self.connectors), table)


@contextlib.asynccontextmanager
async def run_delivery(
    store: Store, settings: Settings, plan: DeliveryPlan, dispatch: DispatchSettings | None = None, auto_reply: AutoReply | None = None
) -> AsyncIterator[Dispatcher]:
    simulator = None
    feed: asyncio.Task[None] | None = None
    configs: list[RouteConfig] = list(plan.connectors)
    if plan.simulated:
        from ..connectors.smpp.simulator import SmscSimulator

        simulator = SmscSimulator(system_id=SIMULATOR_SYSTEM_ID, password=SIMULATOR_PASSWORD)
        port = await simulator.start("127.0.0.1", 0)
        configs = [ConnectorConfig(SIMULATOR_NAME, "127.0.0.1", port, SIMULATOR_SYSTEM_ID, SIMULATOR_PASSWORD)]
        log.info("simulated carrier listening on 127.0.0.1:%d", port)
        if settings.simulator_inbound_file:
            from ..connectors.smpp import inbound_feed

            feed = asyncio.create_task(inbound_feed.follow(simulator, Path(settings.simulator_inbound_file)), name="inbound feed")
            log.info("the simulated carrier sends each line of %s as a subscriber's message", settings.simulator_inbound_file)
    dispatch = dispatch or DispatchSettings.of(settings)
    dispatcher = Dispatcher(store, [], settings.timezone, dispatch)
    forwarder = InboundForwarder(store, settings, auto_reply)
    receiver = InboundReceiver(store, settings, on_stored=forwarder.wake)
    table = set(settings.networks.networks)
    for config in configs:
        if isinstance(config, UpstreamConfig):
            from ..connectors.upstream import UpstreamConnector

            upstream = UpstreamConnector(
                config.name,
                config.base_url,
                config.partner_id,
                config.api_key,
                config.shortcode,
                store=store,
                on_receipt=dispatcher.receipt_sink(config.name),
                batch_size=min(1000, config.window),
                poll_rate=config.poll_rate or settings.upstream_poll_rate,
                poll_interval=config.poll_interval,
            )
            dispatcher.lanes.append(Lane(config, upstream))
            log.info("routing through %s", config.display)
            continue
        alternative = has_alternative(config, configs, table)
        connector = SmppConnector(
            config.name,
            config.host,
            config.port,
            config.system_id,
            config.password,
            system_type=config.system_type,
            bind_mode=config.bind_mode,
            window=config.window,
            tps=config.tps,
            enquire_link_interval=config.enquire_link_interval,
            response_timeout=config.response_timeout,
            concatenation=config.concatenation,
            bind_wait=BIND_WAIT_WITH_ALTERNATIVE_SECONDS if alternative else BIND_WAIT_SECONDS,
            on_receipt=dispatcher.receipt_sink(config.name),
            on_mobile_originated=receiver,
        )
        dispatcher.lanes.append(Lane(config, connector))
        log.info("binding to %s", config.display)
    callbacks = CallbackSender(
        store,
        concurrency=settings.callback_concurrency,
        per_partner_concurrency=settings.callback_concurrency_per_partner,
        timeout=settings.callback_timeout_seconds,
        retry_base_seconds=settings.callback_retry_base_seconds,
        give_up_seconds=settings.callback_give_up_seconds,
    )

    async def callbacks_queued() -> None:
        callbacks.wake()

    dispatcher.on_callbacks_queued = callbacks_queued
    await dispatcher.start()
    await callbacks.start()
    await forwarder.start()
    roller = Roller(store, dispatcher.owner)
    await roller.start()
    try:
        yield dispatcher
    finally:
        await roller.stop()
        await dispatcher.stop()
        await receiver.close()
        await callbacks.stop()
        await forwarder.stop()
        if feed is not None:
            feed.cancel()
        if simulator is not None:
            await simulator.stop()
