"""Subscribers' messages for the simulator to send, from a file that is followed like `tail -f`:
each line `FROM TO TEXT...` (the subscriber's number, the shortcode, the text) becomes an
inbound message to the bound gateway. Blank lines and lines starting with # are skipped."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from .simulator import SmscSimulator

log = logging.getLogger(__name__)


def parse_line(line: str) -> tuple[str, str, str] | None:
    """(from, to, text) of one line, None for a blank line or a comment; ValueError when the
    line lacks a field."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    fields = stripped.split(None, 2)
    if len(fields) < 3:
        raise ValueError(f"expected 'FROM TO TEXT', got {stripped!r}")
    return fields[0], fields[1], fields[2]


async def follow(simulator: SmscSimulator, path: Path, interval: float = 0.5) -> None:
    """Sends every line already in `path`, then every line appended to it, until cancelled.
    The file may appear later; a shortened (rewritten) file is read again from its start."""
    position = 0
    pending = ""
    while True:
        try:
            size = path.stat().st_size  # noqa: ASYNC240 - a stat of a local file, once a poll
            if size < position:
                position, pending = 0, ""
            if size > position:
                with path.open("rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                position += len(chunk)
                pending += chunk.decode("utf-8", errors="replace")
                *lines, pending = pending.split("\n")
                for line in lines:
                    try:
                        parsed = parse_line(line)
                    except ValueError as exc:
                        log.warning("%s: %s", path, exc)
                        continue
                    if parsed is not None:
                        parts = simulator.send_inbound(*parsed)
                        log.info("inbound message from %s to %s (%d parts)", parsed[0], parsed[1], parts)
        except FileNotFoundError:
            pass
        await asyncio.sleep(interval)
