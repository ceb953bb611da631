"""A gateway with the partner SMPP server on loopback, SMPP accounts, and an independent
ESME (smpplib, blocking) to talk to it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.smpp

from smsgw.config import Settings
from smsgw.dispatch.runtime import DeliveryPlan, run_delivery
from smsgw.smpp_server.server import partner_smpp_server
from smsgw.store import smpp_accounts
from smsgw.store.smpp_accounts import SmppAccount

from ..helpers import LiveServer, Operator, free_port

LOOPBACK = "127.0.0.1"


def add_account(
    operator: Operator, partner_id: str, system_id: str, password: str, *, max_binds: int = 2, window: int = 10, tps: int | None = None
) -> None:
    async def add(store):
        hasher = await store.api_key_hasher(operator.settings.api_key_secret)
        account = SmppAccount(system_id, partner_id, hasher.hash(password), max_binds, window, tps)
        await store.write(smpp_accounts.add_account, account, int(time.time() * 1000))

    operator._with_store(add)


@contextlib.contextmanager
def smpp_gateway(settings: Settings, port: int | None = None, *, deliver: bool = True) -> Iterator[tuple[LiveServer, int]]:
    """The gateway (API, delivery through the built-in simulated carrier unless not
    `deliver`) with the partner SMPP server on 127.0.0.1:port."""
    port = port or free_port()
    plan = DeliveryPlan.from_urls([], settings)
    options: dict[str, Any] = {"alongside": lambda acceptance: partner_smpp_server(settings, acceptance, LOOPBACK, port)}
    if deliver:
        options["delivery"] = lambda store: run_delivery(store, settings, plan)
    with LiveServer(settings, **options) as server:
        yield server, port


@dataclass
class Answer:
    sequence: int
    status: int
    message_id: str


@dataclass
class Esme:
    """One bind to the partner SMPP server. Receipts are answered ESME_ROK unless
    `refuse_receipts`, and kept."""

    port: int
    system_id: str
    password: str
    mode: str = "transceiver"
    refuse_receipts: int = 0  # this many receipts answered ESME_RX_T_APPN first
    client: smpplib.client.Client = field(init=False)
    answers: dict[int, Answer] = field(default_factory=dict)
    receipts: list[Any] = field(default_factory=list)
    refused: int = 0
    source: str | None = None  # another loopback address to connect from (127.0.0.0/8)

    def __post_init__(self) -> None:
        self.client = smpplib.client.Client(LOOPBACK, self.port, timeout=10, allow_unknown_opt_params=True)
        if self.source is not None:
            self.client._socket = self.client._create_socket()
            self.client._socket.bind((self.source, 0))
        self.client.connect()

    def bind(self) -> int:
        """The bind's command_status (0 when bound)."""
        try:
            getattr(self.client, f"bind_{self.mode}")(system_id=self.system_id, password=self.password)
        except smpplib.exceptions.PDUError as exc:
            return int(exc.args[1])
        return 0

    def submit(self, destination: str, text: bytes = b"Hello", *, source: str = "SC1", data_coding: int = 0, esm_class: int = 0, **extra: Any) -> int:
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=self.client,
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr=source,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            destination_addr=destination,
            short_message=text,
            data_coding=data_coding,
            esm_class=esm_class,
            registered_delivery=1,
            **extra,
        )
        self.client.send_pdu(pdu)
        return pdu.sequence

    def read(self) -> Any:
        """One PDU from the server, acting on it: answers kept, receipts answered and kept."""
        pdu = self.client.read_pdu()
        if pdu.command == "submit_sm_resp":
            message_id = pdu.message_id.decode() if isinstance(pdu.message_id, bytes) else (pdu.message_id or "")
            self.answers[pdu.sequence] = Answer(pdu.sequence, int(pdu.status), message_id)
        elif pdu.command == "deliver_sm":
            status = smpplib.consts.SMPP_ESME_ROK
            if self.refused < self.refuse_receipts:
                self.refused += 1
                status = 0x64  # ESME_RX_T_APPN: the server must send it again
            else:
                self.receipts.append(pdu)
            response = smpplib.smpp.make_pdu("deliver_sm_resp", client=self.client, status=status)
            response.sequence = pdu.sequence
            self.client.send_pdu(response)
        elif pdu.command == "enquire_link":
            response = smpplib.smpp.make_pdu("enquire_link_resp", client=self.client)
            response.sequence = pdu.sequence
            self.client.send_pdu(response)
        return pdu

    def answer_of(self, sequence: int, timeout: float = 30) -> Answer:
        deadline = time.monotonic() + timeout
        while sequence not in self.answers:
            assert time.monotonic() < deadline, f"no submit_sm_resp for sequence {sequence}"
            self.read()
        return self.answers[sequence]

    def wait_receipts(self, count: int, timeout: float = 60) -> list[Any]:
        deadline = time.monotonic() + timeout
        self.client._socket.settimeout(1)
        while len(self.receipts) < count:
            assert time.monotonic() < deadline, f"{len(self.receipts)} of {count} receipts"
            try:
                self.read()
            except (TimeoutError, smpplib.exceptions.ConnectionError):
                continue
        return self.receipts

    def unbind(self) -> int:
        response = self.client.unbind()
        return int(response.status)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()


def receipt_id(pdu: Any) -> str:
    value = pdu.receipted_message_id
    return (value.decode() if isinstance(value, bytes) else value).rstrip("\0")
