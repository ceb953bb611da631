"""Message delivery states as partners see them through `getdlr` and callbacks.

The numbers are smsgw's own `delivery-status` values (docs/api.md documents the table).
"""

from __future__ import annotations

from enum import IntEnum


class DeliveryState(IntEnum):
    SCHEDULED = 1  # accepted and queued, not yet taken by a carrier
    SENT_TO_NETWORK = 2  # the carrier accepted submit_sm; no receipt yet
    DELIVERED = 3  # DeliveredToTerminal
    ABSENT_SUBSCRIBER = 4  # expired: validity ran out before the handset took it
    DELIVERY_IMPOSSIBLE = 5  # undeliverable, rejected, or failed for good
    SENDER_BLACKLISTED = 6  # the network refuses the sender id
    UNKNOWN = 7  # the network reported a final state it does not explain, or never answered submit_sm
    # Final, described as the providers do: the carrier took it and no receipt came by the end
    # of its validity plus a grace period. Its own number, so that partners can tell it from
    # SentToNetwork that may still change.
    NO_RECEIPT = 8
    CANCELLED = 9  # the partner cancelled it before any dispatcher took it (refunded)

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @property
    def is_final(self) -> bool:
        return self not in (DeliveryState.SCHEDULED, DeliveryState.SENT_TO_NETWORK)


_DESCRIPTIONS = {
    DeliveryState.SCHEDULED: "Scheduled",
    DeliveryState.SENT_TO_NETWORK: "SentToNetwork",
    DeliveryState.DELIVERED: "DeliveredToTerminal",
    DeliveryState.ABSENT_SUBSCRIBER: "AbsentSubscriber",
    DeliveryState.DELIVERY_IMPOSSIBLE: "DeliveryImpossible",
    DeliveryState.SENDER_BLACKLISTED: "SenderName Blacklisted",
    DeliveryState.UNKNOWN: "Unknown",
    DeliveryState.NO_RECEIPT: "SentToNetwork",
    DeliveryState.CANCELLED: "Cancelled",
}

# Queue priorities: lower goes first. OTP traffic overtakes bulk.
PRIORITY_OTP = 0
PRIORITY_BULK = 1
