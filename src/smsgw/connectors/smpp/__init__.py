"""SMPP 3.4: our own small asyncio codec (`pdu`), receipt parsing and id matching
(`receipt`), message segmentation (`segments`), the ESME session the dispatcher uses
(`client.SmppConnector`) and an SMSC simulator (`simulator.SmscSimulator`).

Why our own: the asyncio SMPP libraries on PyPI either lack windowing with a hard cap,
enquire_link supervision or deliver_sm acknowledgement after persistence, or hide the
PDUs behind a bridge we cannot test against malformed input. The codec is small,
dependency-free and property-tested; smpp34 and smpplib serve only as independent peers in
the tests.
"""

from .client import (
    BindRejected,
    MobileOriginated,
    OutboundMessage,
    Receipt,
    SmppConnector,
    SubmitOutcome,
    Verdict,
)
from .pdu import PduError
from .receipt import smsc_id_keys, smsc_ids_match
from .simulator import SmscSimulator

__all__ = [
    "BindRejected",
    "MobileOriginated",
    "OutboundMessage",
    "PduError",
    "Receipt",
    "SmppConnector",
    "SmscSimulator",
    "SubmitOutcome",
    "Verdict",
    "smsc_id_keys",
    "smsc_ids_match",
]
