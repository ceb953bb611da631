"""One supervised bind of an `SmppConnector`: connect, bind, keep alive with enquire_link,
and again after any loss, with exponential backoff and jitter reset by a successful bind."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import TYPE_CHECKING

from .channel import ChannelClosed
from .client_session import ClientSession
from .pdu import ESME_ROK, ESME_RSYSERR, BindReceiver, BindTransceiver, BindTransmitter, EnquireLink, GenericNack, PduError, Unbind, status_name

if TYPE_CHECKING:
    from .client import SmppConnector


class BindRejected(Exception):
    def __init__(self, status: int, link: str) -> None:
        hint = " (check system_id and password)" if status in (0x0D, 0x0E, 0x0F) else ""
        super().__init__(f"{link} rejected by the SMSC: {status_name(status)}{hint}")
        self.status = status


class Link:
    """One supervised bind: connect, bind, run, and again after any loss."""

    def __init__(self, connector: SmppConnector, bind_class: type[BindTransmitter | BindReceiver | BindTransceiver]) -> None:
        self.connector = connector
        self.bind_class = bind_class
        self.name = f"{connector.name}/{bind_class.__name__.removeprefix('Bind').lower()}"
        self.session: ClientSession | None = None
        self.bound = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def supervise(self) -> None:
        connector = self.connector
        delay = connector.reconnect_min
        while not connector.stopping:
            session: ClientSession | None = None
            reader_task: asyncio.Task[None] | None = None
            try:
                session, reader_task = await self._connect_and_bind()
            except BindRejected as exc:
                connector.stats["bind_failures"] += 1
                connector.last_error = str(exc)
                connector.log.error("%s; retrying in %.1fs", exc, delay)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ConnectionError, PduError) as exc:
                connector.stats["connect_failures"] += 1
                connector.last_error = f"{self.name}: cannot bind to {connector.host}:{connector.port}: {exc or type(exc).__name__}"
                connector.log.warning("%s; retrying in %.1fs", connector.last_error, delay)
            else:
                delay = connector.reconnect_min
                connector.stats["binds"] += 1
                connector.last_error = None
                connector.log.info("%s bound to %s:%d", self.name, connector.host, connector.port)
                self.session = session
                self.bound.set()
                keepalive = asyncio.create_task(self._keepalive(session))
                try:
                    await reader_task
                finally:
                    self.bound.clear()
                    self.session = None
                    keepalive.cancel()
                if connector.stopping:
                    break
                connector.stats["reconnects"] += 1
                connector.last_error = f"{self.name}: {session.close_reason or 'connection closed'}"
                connector.log.warning("%s; reconnecting", connector.last_error)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, connector.reconnect_max)

    async def _connect_and_bind(self) -> tuple[ClientSession, asyncio.Task[None]]:
        connector = self.connector
        async with asyncio.timeout(connector.response_timeout):
            reader, writer = await asyncio.open_connection(connector.host, connector.port)
        session = ClientSession(
            self.name,
            reader,
            writer,
            window=connector.submit_window,
            stats=connector.stats,
            log=connector.log,
            handle_inbound=connector.handle_inbound,
            inbound_concurrency=connector.inbound_concurrency,
            max_pdu_length=connector.max_pdu_length,
        )
        reader_task = asyncio.create_task(session.run())
        try:
            response = await session.request(connector.bind_pdu(self.bind_class), connector.response_timeout)
            if response.command_status != ESME_ROK:
                raise BindRejected(response.command_status, self.name)
            if isinstance(response, GenericNack):
                raise BindRejected(response.command_status or ESME_RSYSERR, self.name)
        except BaseException:
            session.close("bind failed")
            await asyncio.gather(reader_task, return_exceptions=True)
            raise
        return session, reader_task

    async def _keepalive(self, session: ClientSession) -> None:
        connector = self.connector
        while session.open:
            await asyncio.sleep(connector.enquire_link_interval)
            try:
                await session.request(EnquireLink(), connector.response_timeout)
                connector.stats["enquire_links"] += 1
            except TimeoutError:
                connector.stats["enquire_link_timeouts"] += 1
                session.close(f"no enquire_link_resp within {connector.response_timeout}s")
                return
            except ChannelClosed:
                return

    async def unbind(self, timeout: float) -> None:
        session = self.session
        if session is None or not session.open:
            return
        deadline = time.monotonic() + timeout
        # Let responses to submit_sm already on the wire come back before saying goodbye.
        while session.waiting and time.monotonic() < deadline - timeout / 2:  # noqa: ASYNC110 - bounded, once per unbind
            await asyncio.sleep(0.01)
        with contextlib.suppress(TimeoutError, ChannelClosed, PduError):
            await session.request(Unbind(), max(0.05, deadline - time.monotonic()))
        session.close("unbound")
