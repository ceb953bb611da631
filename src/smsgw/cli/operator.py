"""The operator's commands that work on the store: partners, shortcodes, opt-outs, operators,
messages, status and migrate (spec/CONTRACT.md, "Operator CLI")."""

from __future__ import annotations

import ipaddress
import secrets
import sys
import time
from typing import Any

import click
from sqlalchemy.exc import IntegrityError

from ..config import Settings
from ..dispatch.webhooks import ensure_public
from ..domain.apikeys import MIN_OPERATOR_KEY_LENGTH, WeakApiKey, check_operator_key, generate_api_key
from ..domain.callback_urls import BadCallbackUrl, UnresolvedHost, check_callback_url
from ..domain.compliance import ALL_SHORTCODES, parse_keyword
from ..domain.identifiers import MAX_SHORTCODE_LENGTH, is_partner_id, is_shortcode
from ..domain.money import MAX_RATE, format_units, parse_amount, parse_units
from ..domain.passwords import WeakPassword, check_password, hash_password
from ..store import accounts, inbound, optout, web
from ..store.errors import AlreadyExists, NotFound
from ..store.store import Partner, Store
from .common import StoreCommand, StoreGroup, fail, with_store
from .smpp_accounts import smpp_account


def units_option(value: str) -> int:
    try:
        return parse_units(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(cls=StoreCommand)
@with_store(prepare=False, creates=True)
async def migrate(store: Store, settings: Settings) -> None:
    """Bring the database schema to this version."""
    await store.migrate()
    click.echo(f"schema of {settings.database_url.display} is up to date")


@click.command(cls=StoreCommand)
@with_store
async def status(store: Store, settings: Settings) -> None:
    """Queue and delivery figures: messages by status, unmatched receipts, pending
    callbacks, and which dispatcher holds which SMSC bind."""
    from ..store import binds, queue

    counts = await store.read(queue.delivery_counts)
    holders = await store.read(binds.lease_holders)
    click.echo(f"store: {settings.database_url.display}")
    for name, count in counts.items():
        click.echo(f"{name + ':':28s}{count}")
    now = time.time() * 1000
    for connector, (owner, until) in sorted(holders.items()):
        state = f"held by {owner}" if owner and until > now else "free"
        click.echo(f"bind {connector}: {state}")


@click.command("message", cls=StoreCommand)
@click.argument("message_id", type=int)
@with_store
async def message_show(store: Store, settings: Settings, message_id: int) -> None:
    """One message as the operator sees it: its partner, state, and the route that carried it."""
    from ..domain.states import DeliveryState
    from ..store import routes

    found = await store.read(routes.carried_message, message_id)
    if found is None:
        raise NotFound(f"message {message_id} does not exist")
    state = DeliveryState(found.state)
    click.echo(f"message:    {found.id} (partner {found.partner_id}, to {found.msisdn}, network {found.network_id})")
    click.echo(f"status:     {int(state)} {state.description} after {found.attempts} attempt(s)")
    click.echo(f"route:      {found.route or 'none yet'}" + (f" (carrier ids {', '.join(found.carrier_ids)})" if found.carrier_ids else ""))
    if found.error:
        click.echo(f"last error: {found.error}")


@click.group(cls=StoreGroup)
def partner() -> None:
    """Create partners, sell them credit, show them."""


@partner.command("create")
@click.argument("partner_id")
@click.option("--name", default=None, help="Display name (default: the id).")
@click.option("--api-key", default=None, help=f"Use this key instead of a generated one ({MIN_OPERATOR_KEY_LENGTH}+ letters, digits, - . _ ~).")
@click.option("--credits", default="0", help="Initial credit in units, e.g. 1000 or 12.50.")
@click.option("--parent", default=None, help="Make it a child account of this reseller.")
@click.option("--rate", default="1", help="With --parent: money per unit the reseller's `credit` converts at (default 1).")
@with_store
async def partner_create(
    store: Store, settings: Settings, partner_id: str, name: str | None, api_key: str | None, credits: str, parent: str | None, rate: str
) -> None:
    """Create a partner and print its API key (shown only this once)."""
    check_partner_id(partner_id)
    check_length(name, 200, "--name")
    amount = units_option(credits)
    rate_hundredths = rate_option(rate)
    if api_key is not None:
        try:
            check_operator_key(api_key)
        except WeakApiKey as exc:
            raise click.BadParameter(str(exc), param_hint="--api-key") from None
    key = api_key or generate_api_key()
    hasher = await store.api_key_hasher(settings.api_key_secret)
    await store.create_partner(partner_id, name or partner_id, hasher.hash(key), amount, parent_id=parent, rate=rate_hundredths)
    click.echo(
        f"partner {partner_id} created with {format_units(amount)} units"
        + (f", child of {parent} at {format_units(rate_hundredths)} per unit" if parent else "")
    )
    click.echo(f"api key: {key}")
    click.echo("store the key now: smsgw keeps only its hash and cannot show it again")


@partner.command("topup", context_settings={"ignore_unknown_options": True})
@click.argument("partner_id")
@click.argument("units")
@click.option("--reference", default=None, help="Invoice or payment reference for the ledger.")
@with_store
async def partner_topup(store: Store, settings: Settings, partner_id: str, units: str, reference: str | None) -> None:
    """Add UNITS of credit (negative to correct a mistake; never below zero)."""
    check_length(reference, 200, "--reference")
    negative = units.startswith("-")
    amount = units_option(units[1:] if negative else units)
    balance = await store.top_up(partner_id, -amount if negative else amount, reference or "cli top-up")
    click.echo(f"partner {partner_id} balance: {format_units(balance)}")


@partner.command("show")
@click.argument("partner_id")
@with_store
async def partner_show(store: Store, settings: Settings, partner_id: str) -> None:
    """Status, balance, shortcodes and callback of a partner."""
    found = await store.get_partner(partner_id)
    if found is None:
        raise NotFound(f"partner {partner_id} does not exist")
    codes = await store.list_shortcodes(partner_id)
    click.echo(f"store:      {settings.database_url.display}")
    click.echo(f"partner:    {found.id}")
    click.echo(f"name:       {found.name}")
    click.echo(f"status:     {found.status}")
    click.echo(f"balance:    {format_units(found.balance)}")
    if codes:
        for code in codes:
            nets = "all networks" if code.networks is None else "networks " + ",".join(str(n) for n in sorted(code.networks))
            click.echo(f"shortcode:  {code.shortcode} ({nets})")
    else:
        click.echo("shortcode:  none (add one with `smsgw shortcode add`)")
    click.echo(f"callback:   {found.callback_url or 'none'}" + (" (private destinations allowed)" if found.callback_allow_private else ""))
    await show_controls(store, found)


@partner.command("suspend")
@click.argument("partner_id")
@with_store
async def partner_suspend(store: Store, settings: Settings, partner_id: str) -> None:
    """Refuse the partner's requests (1006) until `activate`."""
    await store.set_partner_status(partner_id, "suspended")
    click.echo(f"partner {partner_id} suspended")


@partner.command("activate")
@click.argument("partner_id")
@with_store
async def partner_activate(store: Store, settings: Settings, partner_id: str) -> None:
    """Accept the partner's requests again."""
    await store.set_partner_status(partner_id, "active")
    click.echo(f"partner {partner_id} active")


@partner.command("rotate-key")
@click.argument("partner_id")
@with_store
async def partner_rotate_key(store: Store, settings: Settings, partner_id: str) -> None:
    """Replace the partner's API key and print the new one (the old one stops working)."""
    key = generate_api_key()
    hasher = await store.api_key_hasher(settings.api_key_secret)
    await store.set_api_key_hash(partner_id, hasher.hash(key))
    click.echo(f"api key: {key}")


PRIVATE_OPTION = click.option(
    "--allow-private/--public-only",
    default=None,
    help="Let the partner's callback and inbound URLs lead to loopback, private or link-local addresses (tests, "
    "intranets); --public-only takes that back. Default: as set before (public only for a new partner).",
)


async def check_destination(store: Store, partner_id: str, url: str, allow_private: bool | None) -> None:
    """Refuses a URL the senders could not use: badly formed, or (unless private destinations
    are allowed for the partner) one whose host is or resolves to a non-public address."""
    found = await store.get_partner(partner_id)
    if found is None:
        fail(f"partner {partner_id} does not exist")
    if allow_private is not None:
        await store.allow_private_destinations(partner_id, allow_private)
    else:
        allow_private = found.callback_allow_private
    try:
        check_callback_url(url)
        if not allow_private:
            await ensure_public(url)
    except UnresolvedHost as exc:
        # Perhaps a name only the gateway's hosts resolve: the senders check again each time.
        click.echo(f"warning: {exc}; it is checked again before each send", err=True)
    except BadCallbackUrl as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None


@partner.command("callback")
@click.argument("partner_id")
@click.argument("url", required=False)
@click.option("--secret", default=None, help="Signing secret (default: a new random one, printed once).")
@click.option("--clear", is_flag=True, help="Stop sending delivery reports to the partner.")
@PRIVATE_OPTION
@with_store
async def partner_callback(
    store: Store, settings: Settings, partner_id: str, url: str | None, secret: str | None, clear: bool, allow_private: bool | None
) -> None:
    """Send the partner's final delivery reports to URL, signed with HMAC-SHA256."""
    if clear:
        await store.set_callback(partner_id, None, None)
        click.echo(f"partner {partner_id}: no callback")
        return
    if url is None:
        raise click.BadParameter("give the callback URL, or --clear", param_hint="URL")
    check_length(secret, 200, "--secret")
    await check_destination(store, partner_id, url, allow_private)
    signing_secret = secret or secrets.token_hex(32)
    await store.set_callback(partner_id, url, signing_secret)
    click.echo(f"partner {partner_id}: final delivery reports go to {url}")
    click.echo(f"signing secret: {signing_secret}")
    click.echo("each POST carries X-Smsgw-Signature: hex HMAC-SHA256 of the body with this secret")


@click.group(cls=StoreGroup)
def shortcode() -> None:
    """Sender ids (shortcodes) of partners."""


@shortcode.command("add")
@click.argument("shortcode_value", metavar="SHORTCODE")
@click.option("--partner", "partner_id", required=True, help="Partner that owns the sender id.")
@click.option("--networks", default=None, help="Comma-separated network ids it is enabled on (default: all).")
@click.option("--promotional", is_flag=True, help="Promotional traffic: opt-out footer and the networks' sending window.")
@with_store
async def shortcode_add(store: Store, settings: Settings, shortcode_value: str, partner_id: str, networks: str | None, promotional: bool) -> None:
    """Give a partner a sender id (case-sensitive)."""
    if not is_shortcode(shortcode_value):
        raise click.BadParameter(f"a shortcode has 1 to {MAX_SHORTCODE_LENGTH} printable characters", param_hint="SHORTCODE")
    network_ids = parse_network_ids(networks, settings) if networks is not None else None
    await store.add_shortcode(shortcode_value, partner_id, network_ids)
    if promotional:
        await store.write(optout.set_promotional, shortcode_value, True)
    where = "every network" if network_ids is None else "networks " + ",".join(map(str, sorted(network_ids)))
    click.echo(f"shortcode {shortcode_value} added for {partner_id} on {where}" + (" (promotional)" if promotional else ""))


def parse_network_ids(text: str, settings: Settings) -> set[int]:
    try:
        return settings.networks.parse_ids(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--networks") from None


def check_length(value: str | None, limit: int, hint: str) -> None:
    if value is not None and len(value) > limit:
        raise click.BadParameter(f"at most {limit} characters", param_hint=hint)


def check_partner_id(partner_id: str) -> None:
    if not is_partner_id(partner_id):
        raise click.BadParameter("a partner id has 1 to 64 ASCII letters, digits, '-', '_' or '.'", param_hint="PARTNER_ID")


def rate_option(value: str) -> int:
    try:
        return parse_amount(value, MAX_RATE)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rate") from None


async def show_controls(store: Store, found: Partner) -> None:
    """The reseller, children, rate limit and allow-list lines of `partner show`."""
    if found.parent_id is not None:
        click.echo(f"parent:     {found.parent_id} (rate {format_units(found.rate)} per unit)")
    for child in await store.read(accounts.child_accounts, found.id):
        click.echo(f"child:      {child.id} (balance {format_units(child.balance)}, rate {format_units(child.rate)})")
    click.echo(f"rate limit: {f'{found.max_mps} messages/s' if found.max_mps is not None else 'none'}")
    click.echo(f"allowed IP: {found.allowed_ips or 'any'}")


@partner.command("limit")
@click.argument("partner_id")
@click.option("--mps", type=click.IntRange(1, 1_000_000), default=None, help="Messages (parts) per second over every API process.")
@click.option("--clear", is_flag=True, help="Remove the limit.")
@with_store
async def partner_limit(store: Store, settings: Settings, partner_id: str, mps: int | None, clear: bool) -> None:
    """Limit how many messages per second the partner may send (HTTP 429 over it)."""
    if clear == (mps is not None):
        raise click.UsageError("give --mps N or --clear")
    await store.write(accounts.set_rate_limit, partner_id, mps)
    click.echo(f"partner {partner_id}: " + (f"at most {mps} messages per second" if mps is not None else "no rate limit"))


@partner.command("allow-ip")
@click.argument("partner_id")
@click.argument("cidrs", nargs=-1)
@click.option("--clear", is_flag=True, help="Accept the partner's requests from any address again.")
@with_store
async def partner_allow_ip(store: Store, settings: Settings, partner_id: str, cidrs: tuple[str, ...], clear: bool) -> None:
    """Accept the partner's requests only from these addresses or CIDRs (others get 1006)."""
    if clear == bool(cidrs):
        raise click.UsageError("give one or more CIDRs, or --clear")
    try:
        networks = [ipaddress.ip_network(c.strip(), strict=False) for part in cidrs for c in part.split(",") if c.strip()]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="CIDR") from None
    text = ",".join(str(n) for n in networks) or None
    if text is not None and len(text) > 2000:
        raise click.BadParameter("at most 2000 characters of CIDRs", param_hint="CIDR")
    await store.write(accounts.set_allowed_ips, partner_id, text)
    click.echo(f"partner {partner_id}: requests accepted from {text or 'any address'}")


@shortcode.command("set")
@click.argument("shortcode_value", metavar="SHORTCODE")
@click.option("--promotional/--transactional", required=True, help="Promotional: opt-out footer and sending window; transactional: neither.")
@with_store
async def shortcode_set(store: Store, settings: Settings, shortcode_value: str, promotional: bool) -> None:
    """Change whether a sender id carries promotional or transactional traffic (messages
    accepted from now on)."""
    await store.write(optout.set_promotional, shortcode_value, promotional)
    click.echo(f"shortcode {shortcode_value} is {'promotional' if promotional else 'transactional'}")


@shortcode.group("keyword")
def shortcode_keyword() -> None:
    """Keywords of shared shortcodes: an inbound message's first word picks the partner."""


@shortcode_keyword.command("add")
@click.argument("shortcode_value", metavar="SHORTCODE")
@click.argument("keyword")
@click.option("--partner", "partner_id", required=True, help="Partner that gets the messages starting with KEYWORD.")
@with_store
async def shortcode_keyword_add(store: Store, settings: Settings, shortcode_value: str, keyword: str, partner_id: str) -> None:
    if not is_shortcode(shortcode_value):
        raise click.BadParameter(f"a shortcode has 1 to {MAX_SHORTCODE_LENGTH} printable characters", param_hint="SHORTCODE")
    word = parse_keyword_argument(keyword)
    try:
        await store.write(optout.add_keyword, shortcode_value, word, partner_id, int(time.time() * 1000))
    except IntegrityError:
        raise AlreadyExists(f"shortcode {shortcode_value} already has the keyword {word}") from None
    click.echo(f"messages to {shortcode_value} starting with {word} go to {partner_id}")


@shortcode_keyword.command("remove")
@click.argument("shortcode_value", metavar="SHORTCODE")
@click.argument("keyword")
@with_store
async def shortcode_keyword_remove(store: Store, settings: Settings, shortcode_value: str, keyword: str) -> None:
    word = parse_keyword_argument(keyword)
    await store.write(optout.remove_keyword, shortcode_value, word)
    click.echo(f"keyword {word} removed from {shortcode_value}")


@shortcode_keyword.command("list")
@click.argument("shortcode_value", metavar="SHORTCODE", required=False)
@with_store
async def shortcode_keyword_list(store: Store, settings: Settings, shortcode_value: str | None) -> None:
    for shortcode_text, word, partner_id in await store.read(optout.keywords, shortcode_value):
        click.echo(f"{shortcode_text}\t{word}\t{partner_id}")


def parse_keyword_argument(keyword: str) -> str:
    try:
        return parse_keyword(keyword)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="KEYWORD") from None


@click.group("optout", cls=StoreGroup)
def optout_group() -> None:
    """Numbers that get none of a partner's messages (from one shortcode, or all of them)."""


def optout_numbers(settings: Settings, numbers: tuple[str, ...], file: Any) -> list[str]:
    """International digits of the numbers given, and of those in the file (one a line, or a
    CSV whose first column is the number; blank lines and # comments skipped)."""
    raw = list(numbers)
    if file is not None:
        for line in file:
            first = line.split(",", 1)[0].strip()
            if first and not first.startswith("#"):
                raw.append(first)
    if not raw:
        raise click.BadParameter("give numbers, or --file", param_hint="NUMBER")
    digits, bad = [], []
    for value in raw:
        msisdn = settings.networks.normalise(value)
        if msisdn is None:
            bad.append(value)
        else:
            digits.append(msisdn.digits)
    if bad:
        # A header line of a CSV is not a number; anything else is a mistake worth stopping for.
        if file is not None and bad == raw[len(numbers) : len(numbers) + 1]:
            return digits
        raise click.BadParameter(f"not valid mobile numbers: {', '.join(bad[:10])}" + (" ..." if len(bad) > 10 else ""), param_hint="NUMBER")
    return digits


_OPTOUT_SHORTCODE_HELP = "One of the partner's shortcodes (default: all of them, like STOPALL)."


@optout_group.command("add")
@click.argument("partner_id")
@click.argument("numbers", nargs=-1)
@click.option("--shortcode", "shortcode_value", default=None, help=_OPTOUT_SHORTCODE_HELP)
@click.option("--file", type=click.File("r", encoding="utf-8"), default=None, help="Numbers, one a line (or a CSV's first column).")
@with_store
async def optout_add(store: Store, settings: Settings, partner_id: str, numbers: tuple[str, ...], shortcode_value: str | None, file: Any) -> None:
    digits = optout_numbers(settings, numbers, file)
    await store.read(optout.require_partner, partner_id)
    added = await store.write(optout.add, partner_id, shortcode_value or ALL_SHORTCODES, digits, "operator", int(time.time() * 1000))
    where = f"shortcode {shortcode_value}" if shortcode_value else "all shortcodes"
    click.echo(f"partner {partner_id}, {where}: {added} numbers added ({len(set(digits)) - added} already listed)")


@optout_group.command("remove")
@click.argument("partner_id")
@click.argument("numbers", nargs=-1)
@click.option("--shortcode", "shortcode_value", default=None, help=_OPTOUT_SHORTCODE_HELP)
@click.option("--file", type=click.File("r", encoding="utf-8"), default=None, help="Numbers, one a line (or a CSV's first column).")
@with_store
async def optout_remove(store: Store, settings: Settings, partner_id: str, numbers: tuple[str, ...], shortcode_value: str | None, file: Any) -> None:
    """Take numbers off the list: of one shortcode, or (without --shortcode) every entry of
    the partner's list for them."""
    digits = optout_numbers(settings, numbers, file)
    await store.read(optout.require_partner, partner_id)
    if shortcode_value is None:
        covered = sorted({entry[0] for entry in await store.read(optout.entries, partner_id, None)} | {ALL_SHORTCODES})
    else:
        covered = [shortcode_value]
    removed = await store.write(optout.remove, partner_id, covered, digits)
    click.echo(f"partner {partner_id}: {removed} entries removed")


@optout_group.command("list")
@click.argument("partner_id")
@click.option("--shortcode", "shortcode_value", default=None, help="Only what applies to this shortcode.")
@with_store
async def optout_list(store: Store, settings: Settings, partner_id: str, shortcode_value: str | None) -> None:
    await store.read(optout.require_partner, partner_id)
    for shortcode_text, msisdn, source, created_at in await store.read(optout.entries, partner_id, shortcode_value):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created_at / 1000))
        click.echo(f"{msisdn}\t{'all' if shortcode_text == ALL_SHORTCODES else shortcode_text}\t{source}\t{when} UTC")


@partner.command("inbound")
@click.argument("partner_id")
@click.argument("url", required=False)
@click.option(
    "--method", type=click.Choice(["GET", "POST"], case_sensitive=False), default="POST", show_default=True, help="GET: query string; POST: JSON."
)
@click.option("--auto-reply/--no-auto-reply", default=False, help="Send the endpoint's 2xx text answer back to the subscriber (charged).")
@click.option("--clear", is_flag=True, help="Stop forwarding (messages stay readable through getinbox).")
@PRIVATE_OPTION
@with_store
async def partner_inbound(
    store: Store, settings: Settings, partner_id: str, url: str | None, method: str, auto_reply: bool, clear: bool, allow_private: bool | None
) -> None:
    """Forward messages subscribers send to the partner's shortcodes to URL, signed like
    delivery reports (with the partner's callback secret); URL `smpp`: as deliver_sm to a
    receiver bind of the partner's SMPP accounts, kept until one takes them."""
    if clear:
        await store.write(inbound.set_endpoint, partner_id, None, None, False)
        click.echo(f"partner {partner_id}: inbound messages are not forwarded")
        return
    if url is None:
        raise click.BadParameter("give the endpoint URL, `smpp`, or --clear", param_hint="URL")
    if url.lower() == "smpp":
        if auto_reply:
            raise click.BadParameter("an ESME answers with submit_sm: auto-reply is for URLs", param_hint="--auto-reply")
        await store.write(inbound.set_endpoint, partner_id, None, inbound.INBOUND_BY_SMPP, False)
        click.echo(f"partner {partner_id}: inbound messages go as deliver_sm to a receiver bind of its SMPP accounts")
        return
    await check_destination(store, partner_id, url, allow_private)
    await store.write(inbound.set_endpoint, partner_id, url, method.upper(), auto_reply)
    click.echo(f"partner {partner_id}: inbound messages go to {url} by {method.upper()}" + (", with auto-reply" if auto_reply else ""))
    partner_row = await store.get_partner(partner_id)
    if partner_row is not None and not partner_row.callback_secret:
        # Forwards are signed with the callback secret; a partner without one gets it now.
        signing_secret = secrets.token_hex(32)
        await store.set_callback(partner_id, partner_row.callback_url, signing_secret)
        click.echo(f"signing secret: {signing_secret}")
    click.echo("each forward carries X-Smsgw-Signature: hex HMAC-SHA256 of the POST body, or of the query string of a GET")


PASSWORD_STDIN_OPTION = click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input (scripts).")


def read_password(from_stdin: bool) -> str:
    """A new password, from stdin's first line or asked twice at a hidden prompt; refused
    unless it is fit to be one (domain/passwords.py)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
    except WeakPassword as exc:
        raise click.BadParameter(str(exc), param_hint="password") from None
    return password


@click.group("operator", cls=StoreGroup)
def operator_group() -> None:
    """Operators of the web console (/console/)."""


@operator_group.command("create")
@click.argument("name")
@PASSWORD_STDIN_OPTION
@with_store
async def operator_create(store: Store, settings: Settings, name: str, password_stdin: bool) -> None:
    """Create an operator who can sign in to the console (the password is stored as a scrypt hash)."""
    if not is_partner_id(name):
        raise click.BadParameter("an operator name has 1 to 64 ASCII letters, digits, '-', '_' or '.'", param_hint="NAME")
    hashed = hash_password(read_password(password_stdin))
    await store.write(web.create_operator, name, hashed, int(time.time() * 1000))
    click.echo(f"operator {name} created")


@operator_group.command("list")
@with_store
async def operator_list(store: Store, settings: Settings) -> None:
    for row in await store.read(web.list_operators):
        click.echo(f"{row.name}\tcreated {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(row.created_at / 1000))} UTC")


@operator_group.command("remove")
@click.argument("name")
@with_store
async def operator_remove(store: Store, settings: Settings, name: str) -> None:
    """Remove an operator; its console sessions end at once."""
    await store.write(web.remove_operator, name)
    click.echo(f"operator {name} removed")


@partner.command("portal-password")
@click.argument("partner_id")
@PASSWORD_STDIN_OPTION
@with_store
async def partner_portal_password(store: Store, settings: Settings, partner_id: str, password_stdin: bool) -> None:
    """Set the password the partner signs in to the portal (/portal/) with; its portal sessions end."""
    hashed = hash_password(read_password(password_stdin))
    await store.write(web.set_portal_password, partner_id, hashed, int(time.time() * 1000))
    click.echo(f"partner {partner_id}: portal password set")


# The SMPP accounts of a partner have a module of their own.
partner.add_command(smpp_account)
