"""Delivery reports as partners receive them: local times in the gateway's zone; turnaround
as HH:MM:SS in `getdlr` answers and as whole seconds (`22s`) in callback bodies, each as the
providers write it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from .states import DeliveryState


def local_time(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: int) -> str:
    """Turnaround as HH:MM:SS; hours go past 24 rather than wrapping."""
    seconds = max(0, ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def seconds_taken(ms: int) -> str:
    """Turnaround in whole seconds with an `s` (`22s`), as the providers' push reports it."""
    return f"{max(0, ms) // 1000}s"


def callback_body(message_id: int, clientsmsid_json: str | None, msisdn: str, state: int, created_at: int, done_at: int, zone: ZoneInfo) -> bytes:
    """The JSON POSTed to a partner's callback URL for a final report (spec/CONTRACT.md,
    "Delivery report callback"), plus the numeric status."""
    delivery = DeliveryState(state)
    return orjson.dumps(
        {
            "messageid": str(message_id),
            "clientsmsid": orjson.loads(clientsmsid_json) if clientsmsid_json is not None else None,
            "mobile": msisdn,
            "description": delivery.description,
            "status": int(delivery),
            "timeTaken": seconds_taken(done_at - created_at),
            "timestamp": local_time(done_at, zone),
        }
    )
