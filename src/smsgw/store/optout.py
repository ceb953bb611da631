"""Opt-out lists (one per partner and shortcode, "*" for all of a partner's shortcodes) and
the keywords of shared shortcodes.

The acceptance path asks `listed` once per request: one lookup on the primary key
(partner, shortcode IN (s, "*"), msisdn IN (...)), whatever the length of the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from ..domain.compliance import ALL_SHORTCODES
from .errors import NotFound
from .prepared import PreparedIn
from .schema import optouts, partners, shortcode_keywords, shortcodes

_LISTED_IN = PreparedIn(
    lambda names: (
        select(optouts.c.msisdn)
        .where(
            optouts.c.partner_id == _param("o_partner"), optouts.c.shortcode.in_([_param("o_shortcode"), ALL_SHORTCODES]), optouts.c.msisdn.in_(names)
        )
        .distinct()
    )
)


def _param(name: str):
    from sqlalchemy import bindparam

    return bindparam(name)


def listed(conn: Connection, partner_id: str, shortcode: str, msisdns: Sequence[str]) -> set[str]:
    """The numbers of `msisdns` that opted out of the partner's messages from `shortcode`."""
    if not msisdns:
        return set()
    return {row[0] for row in _LISTED_IN.rows(conn, sorted(set(msisdns)), o_partner=partner_id, o_shortcode=shortcode)}


def add(conn: Connection, partner_id: str, shortcode: str, msisdns: Iterable[str], source: str, now: int) -> int:
    """Puts the numbers on the list; returns how many were not on it yet."""
    wanted = sorted(set(msisdns))
    if not wanted:
        return 0
    present: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        present.update(
            conn.execute(
                select(optouts.c.msisdn).where(optouts.c.partner_id == partner_id, optouts.c.shortcode == shortcode, optouts.c.msisdn.in_(chunk))
            ).scalars()
        )
    rows = [{"partner_id": partner_id, "shortcode": shortcode, "msisdn": m, "source": source, "created_at": now} for m in wanted if m not in present]
    if rows:
        conn.execute(insert(optouts), rows)
    return len(rows)


def remove(conn: Connection, partner_id: str, shortcodes_: Sequence[str], msisdns: Iterable[str]) -> int:
    wanted = sorted(set(msisdns))
    removed = 0
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        removed += conn.execute(
            delete(optouts).where(optouts.c.partner_id == partner_id, optouts.c.shortcode.in_(list(shortcodes_)), optouts.c.msisdn.in_(chunk))
        ).rowcount
    return removed


def entries(conn: Connection, partner_id: str, shortcode: str | None) -> list[tuple[str, str, str, int]]:
    """(shortcode, msisdn, source, created_at) of the partner's list, or of one shortcode's
    (with the entries that cover all shortcodes)."""
    query = select(optouts.c.shortcode, optouts.c.msisdn, optouts.c.source, optouts.c.created_at).where(optouts.c.partner_id == partner_id)
    if shortcode is not None:
        query = query.where(optouts.c.shortcode.in_([shortcode, ALL_SHORTCODES]))
    return [tuple(r) for r in conn.execute(query.order_by(optouts.c.shortcode, optouts.c.msisdn)).all()]


def require_partner(conn: Connection, partner_id: str) -> None:
    if conn.execute(select(partners.c.id).where(partners.c.id == partner_id)).first() is None:
        raise NotFound(f"partner {partner_id} does not exist")


# -- keywords of shared shortcodes ---------------------------------------------------------------


def add_keyword(conn: Connection, shortcode: str, keyword: str, partner_id: str, now: int) -> None:
    require_partner(conn, partner_id)
    owner = conn.execute(select(shortcodes.c.partner_id).where(shortcodes.c.shortcode == shortcode)).scalar()
    if owner is not None and owner != partner_id:
        # A dedicated shortcode's messages are its owner's: another partner's keyword on it
        # would take them away.
        raise ValueError(f"shortcode {shortcode} is a sender id of {owner}; keywords on it can only be {owner}'s")
    conn.execute(insert(shortcode_keywords).values(shortcode=shortcode, keyword=keyword, partner_id=partner_id, created_at=now))


def remove_keyword(conn: Connection, shortcode: str, keyword: str) -> None:
    if (
        conn.execute(delete(shortcode_keywords).where(shortcode_keywords.c.shortcode == shortcode, shortcode_keywords.c.keyword == keyword)).rowcount
        == 0
    ):
        raise NotFound(f"shortcode {shortcode} has no keyword {keyword}")


def keywords(conn: Connection, shortcode: str | None) -> list[tuple[str, str, str]]:
    query = select(shortcode_keywords.c.shortcode, shortcode_keywords.c.keyword, shortcode_keywords.c.partner_id)
    if shortcode is not None:
        query = query.where(shortcode_keywords.c.shortcode == shortcode)
    return [tuple(r) for r in conn.execute(query.order_by(shortcode_keywords.c.shortcode, shortcode_keywords.c.keyword)).all()]


def set_promotional(conn: Connection, shortcode: str, promotional: bool) -> None:
    from sqlalchemy import update

    if conn.execute(update(shortcodes).where(shortcodes.c.shortcode == shortcode).values(promotional=int(promotional))).rowcount == 0:
        raise NotFound(f"shortcode {shortcode} does not exist")
