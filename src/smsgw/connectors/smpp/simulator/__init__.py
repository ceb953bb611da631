"""An SMPP 3.4 SMSC simulator for tests, demos and benchmarks (asyncio, loopback by default).

It accepts bind_transmitter / bind_receiver / bind_transceiver (checking the credentials
when it was given a system_id and password: unknown system_id -> ESME_RBINDFAIL, wrong
password -> ESME_RINVPASWD), answers enquire_link and unbind, generic_nacks what it cannot
decode, and handles each submit_sm with a *behaviour*:

| behaviour (flag)  | class                  | what the ESME sees                                         |
|-------------------|------------------------|------------------------------------------------------------|
| happy             | Happy                  | submit_sm_resp with a fresh id, then a DELIVRD receipt      |
| delayed           | DelayedReceipt         | the same, the receipt `receipt_delay` (default 2 s) later   |
| undeliverable     | Undeliverable          | submit_sm_resp OK, then an UNDELIV receipt (err:001)        |
| expired           | Expired                | submit_sm_resp OK, then an EXPIRED receipt                  |
| rejected          | Rejected               | submit_sm_resp with `reject_status` (ESME_RINVDSTADR)       |
| throttle          | Throttling             | ESME_RTHROTTLED above `throttle_tps`, or every Nth submit   |
| queuefull         | QueueFull              | ESME_RMSGQFUL (every submit, or every Nth)                  |
| noresponse        | NoResponse             | nothing: the submit_sm is never answered                    |
| drop              | DropConnection         | after `drop_after` answered submits on a connection, stops  |
|                   |                        | answering and closes once `drop_hold` are unanswered        |
| early             | ReceiptBeforeResponse  | the DELIVRD receipt first, then the submit_sm_resp          |
| slow              | SlowResponse           | submit_sm_resp only after `response_delay` (default 1 s)    |
| blacklisted       | Blacklisted            | submit_sm_resp OK, then a BLACKLST receipt (the subscriber  |
|                   |                        | blocked the sender)                                         |

The behaviour for all traffic is a constructor flag (`behaviour=`): every number gets it,
whatever its digits, so a demo campaign to real-looking numbers never meets a fault by
accident. Only with `test_numbers=True` (`smsgw smsc-sim --test-numbers`) do the reserved
test numbers below pick their own behaviour (any other number gets the flagged one):

| destination ends in | behaviour                                                     |
|---------------------|---------------------------------------------------------------|
| 0001                | undeliverable (UNDELIV receipt)                               |
| 0002                | rejected (submit_sm_resp ESME_RINVDSTADR)                     |
| 0003                | delayed receipt (`receipt_delay`, default 2 s)                |
| 0004                | expired (EXPIRED receipt)                                     |
| 0005                | throttled, always (ESME_RTHROTTLED)                           |
| 0006                | queue full, always (ESME_RMSGQFUL)                            |
| 0007                | no response                                                   |
| 0008                | the connection is dropped on receipt of the submit_sm         |
| 0009                | receipt before response                                       |

Message ids are a counter written as upper-case hex, zero-padded to 8 digits
(`id_format="hex"`) or in decimal (`id_format="decimal"`). With `receipt_id_format="other"`
the receipts name the id in the other format (hex ids come back as 10-digit zero-padded
decimal, decimal ids as lower-case hex), which is what some carriers do. Each part of a
long message has its own id and its own receipt. Receipts carry the standard text and, unless
`receipt_tlvs=False`, the receipted_message_id and message_state TLVs.

Receipts go to the session that submitted if it can receive, else to any receiver bound
with the same system_id; when none is bound they wait for one. A receipt whose
deliver_sm_resp is not ESME_ROK, or whose connection ends before the answer, is delivered
again after `redelivery_delay` (at most `max_redeliveries` times).

`send_inbound` sends a subscriber's message to the bound gateway (deliver_sm, esm_class 0,
UDH or SAR parts in any order, over one bind or spread over several); `smsgw smsc-sim
--inbound-file` feeds it from a file.

Counters for tests: `submits`, `submits_by_destination`, `texts` (part text -> count),
`receipts_sent`, `receipts_acked`, `binds`, `bind_failures`, `max_outstanding` (most
unanswered submit_sm on one connection at any time), `responses_by_status`, and `received`,
the last `max_received` submit_sm as `SubmitRecord`s. Everything is bounded, so the
simulator can serve a long-running gateway and survive hostile ESMEs: per-destination and
per-text counts are exact up to `max_received` distinct keys; receipts waiting for a
receiver (none bound, or its `receipt_window` full of unanswered deliver_sm) are at most
`max_received` in all, for at most `max_system_ids` system_ids (the oldest are dropped and
counted in `receipts_abandoned`); a connection whose peer does not read its answers is not
read from while more than `max_write_buffer` bytes wait to be written to it.
"""

from .behaviours import (
    BEHAVIOUR_NAMES,
    BEHAVIOURS,
    TEST_NUMBER_SUFFIXES,
    Behaviour,
    Blacklisted,
    DelayedReceipt,
    DropConnection,
    DropNow,
    Expired,
    Happy,
    NoResponse,
    QueueFull,
    ReceiptBeforeResponse,
    Rejected,
    SlowResponse,
    SubmitContext,
    Throttling,
    Undeliverable,
)
from .server import SmscSimulator
from .session import PendingReceipt, SmscSession, SubmitRecord

__all__ = [
    "BEHAVIOURS",
    "BEHAVIOUR_NAMES",
    "TEST_NUMBER_SUFFIXES",
    "Behaviour",
    "Blacklisted",
    "DelayedReceipt",
    "DropConnection",
    "DropNow",
    "Expired",
    "Happy",
    "NoResponse",
    "PendingReceipt",
    "QueueFull",
    "ReceiptBeforeResponse",
    "Rejected",
    "SlowResponse",
    "SmscSession",
    "SmscSimulator",
    "SubmitContext",
    "SubmitRecord",
    "Throttling",
    "Undeliverable",
]
