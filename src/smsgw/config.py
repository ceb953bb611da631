"""Settings, read from SMSGW_* environment variables. A wrong value stops the gateway at start
with a message that names the variable, never later with a traceback."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .domain.apikeys import MIN_SECRET_LENGTH
from .domain.compliance import DEFAULT_OPTIN_KEYWORDS, DEFAULT_OPTOUT_KEYWORDS, DEFAULT_PROMO_WINDOW, Window, parse_keywords
from .domain.networks import KENYA, NetworkTable, NetworkTableError
from .store.urls import DEFAULT_DATABASE_URL, BadDatabaseUrl, StoreUrl


class ConfigError(ValueError):
    pass


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be a number of seconds") from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _secret(env: Mapping[str, str], name: str, min_length: int) -> str | None:
    raw = env.get(name) or None
    if raw is not None and len(raw) < min_length:
        raise ConfigError(f"{name} must have at least {min_length} characters (e.g. the output of `openssl rand -hex 32`)")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be true or false")


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(env: Mapping[str, str], name: str, default: tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
    raw = env.get(name) or ""
    if not raw.strip():
        return default
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} must be comma-separated addresses or CIDRs: {exc}") from None


def _keywords(env: Mapping[str, str], name: str, default: frozenset[str]) -> frozenset[str]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return frozenset(default)
    try:
        return parse_keywords(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _window(env: Mapping[str, str], name: str, default: Window) -> Window:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return Window.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _api_key_secret(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    return _secret(env, name, MIN_SECRET_LENGTH) or default


def _synchronous(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).upper()
    if value not in ("FULL", "NORMAL", "EXTRA"):
        raise ConfigError(f"{name}={value!r} must be FULL, EXTRA or NORMAL (OFF would lose accepted messages)")
    return value


def _log_format(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in ("text", "json"):
        raise ConfigError(f"{name}={value!r} must be text or json")
    return value


Reader = Callable[[Mapping[str, str], str, Any], Any]


def setting(env: str, default: Any, *, minimum: float = 0, read: Reader | None = None, secret: bool = False) -> Any:
    """A field of Settings, declared once: its environment variable and its default. It is
    read by its type (int and float with `minimum`, bool, str | None) unless `read` is given;
    a secret is left out of the repr."""
    return field(default=default, repr=not secret, metadata={"env": env, "minimum": minimum, "read": read})


def _from_declarations(settings: type[Settings], env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for declared in fields(settings):
        name = declared.metadata.get("env")
        if name is None:
            continue
        read, minimum = declared.metadata["read"], declared.metadata["minimum"]
        default: Any = declared.default
        if read is not None:
            values[declared.name] = read(env, name, default)
        elif declared.type == "int":
            values[declared.name] = _int(env, name, default, minimum=int(minimum))
        elif declared.type == "float":
            values[declared.name] = _float(env, name, default, minimum=minimum)
        elif declared.type == "bool":
            values[declared.name] = _bool(env, name, default)
        elif declared.type == "str | None":
            values[declared.name] = env.get(name) or default
        else:
            raise TypeError(f"Settings.{declared.name}: a {declared.type} setting needs a reader")
    return values


def setting_defaults() -> dict[str, Any]:
    """Each declared setting's default, by field name: what other settings objects (the
    dispatcher's) take their defaults from instead of writing them again."""
    return {declared.name: declared.default for declared in fields(Settings) if "env" in declared.metadata}


@dataclass(frozen=True)
class Settings:
    database_url: StoreUrl
    timezone: ZoneInfo
    networks: NetworkTable
    max_bulk_messages: int = setting("SMSGW_MAX_BULK_MESSAGES", 1000, minimum=1)
    max_parts: int = setting("SMSGW_MAX_PARTS", 6, minimum=1)
    max_body_bytes: int = setting("SMSGW_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024)
    legacy_respose_code: bool = setting("SMSGW_LEGACY_RESPOSE_CODE", False)
    sqlite_synchronous: str = setting("SMSGW_SQLITE_SYNCHRONOUS", "FULL", read=_synchronous)
    # How long a transaction waits for a lock held by another before giving up (4090):
    # SQLite's busy_timeout, PostgreSQL's lock_timeout.
    lock_timeout_ms: int = setting("SMSGW_LOCK_TIMEOUT_MS", 10_000, minimum=1)
    admin_token: str | None = setting("SMSGW_ADMIN_TOKEN", None, secret=True)
    # Keys the stored API key hashes; unset, the store's own generated secret does.
    api_key_secret: str | None = setting("SMSGW_API_KEY_SECRET", None, read=_api_key_secret, secret=True)
    database_pool_size: int = setting("SMSGW_DATABASE_POOL_SIZE", 10, minimum=1)
    # How long the gateway keeps trying a message it cannot hand to a carrier.
    validity_seconds: int = setting("SMSGW_VALIDITY_SECONDS", 48 * 3600, minimum=1)
    # A dispatcher that dies holds its claimed messages this long before others take them.
    lease_seconds: int = setting("SMSGW_LEASE_SECONDS", 60, minimum=1)
    # An SMSC bind whose dispatcher stopped renewing is taken over after this.
    bind_lease_seconds: int = setting("SMSGW_BIND_LEASE_SECONDS", 15, minimum=1)
    retry_base_seconds: float = setting("SMSGW_RETRY_BASE_SECONDS", 2.0, minimum=0)
    retry_max_seconds: float = setting("SMSGW_RETRY_MAX_SECONDS", 300.0, minimum=1)
    callback_retry_base_seconds: float = setting("SMSGW_CALLBACK_RETRY_BASE_SECONDS", 10.0, minimum=0.1)
    # Proxies whose X-Forwarded-For names the client (for partners' IP allow-lists).
    trusted_proxies: tuple[IPNetwork, ...] = setting("SMSGW_TRUSTED_PROXIES", (), read=_networks)
    # Delivery bounds: a submit_sm without submit_sm_resp is sent again at most this many
    # times (each may be a duplicate on the handset), then the message ends Unknown; a
    # message the carrier took ends SentToNetwork (final) this long after its validity if no
    # receipt came.
    max_unanswered_resends: int = setting("SMSGW_MAX_UNANSWERED_RESENDS", 2, minimum=0)
    receipt_grace_seconds: int = setting("SMSGW_RECEIPT_GRACE_SECONDS", 24 * 3600, minimum=0)
    # A route with this many submits to retry in a row is out of the choice for the probe time
    # (doubling while its probes fail), and the routes of the next priority take its traffic.
    route_failure_threshold: int = setting("SMSGW_ROUTE_FAILURE_THRESHOLD", 5, minimum=1)
    route_probe_seconds: float = setting("SMSGW_ROUTE_PROBE_SECONDS", 5.0, minimum=0.1)
    # getdlr requests per second one upstream route sends at most, for the messages it carried
    # that are not final (a route's own poll_rate= replaces it).
    upstream_poll_rate: float = setting("SMSGW_UPSTREAM_POLL_RATE", 20.0, minimum=0.1)
    callback_timeout_seconds: float = setting("SMSGW_CALLBACK_TIMEOUT_SECONDS", 10.0, minimum=0.1)
    callback_concurrency: int = setting("SMSGW_CALLBACK_CONCURRENCY", 64, minimum=1)
    callback_concurrency_per_partner: int = setting("SMSGW_CALLBACK_CONCURRENCY_PER_PARTNER", 16, minimum=1)
    # A callback still failing this long after it was queued is given up (reason in its row).
    callback_give_up_seconds: int = setting("SMSGW_CALLBACK_GIVE_UP_SECONDS", 3 * 86400, minimum=1)
    # HTTP connections (api/http.py). A client sends its request head within the head timeout
    # and its body at the minimum rate after a first allowance; one idle between requests
    # longer than the keep-alive is closed. Past the connection limit the oldest connection
    # that has not yet sent a request head is closed for the new one, or the new one refused.
    http_head_timeout_seconds: float = setting("SMSGW_HTTP_HEAD_TIMEOUT_SECONDS", 10.0, minimum=0.1)
    http_body_timeout_seconds: float = setting("SMSGW_HTTP_BODY_TIMEOUT_SECONDS", 20.0, minimum=0.1)
    http_body_min_bytes_per_second: int = setting("SMSGW_HTTP_BODY_MIN_BYTES_PER_SECOND", 1024, minimum=1)
    http_max_head_bytes: int = setting("SMSGW_HTTP_MAX_HEAD_BYTES", 32 * 1024, minimum=1024)
    http_max_header_line_bytes: int = setting("SMSGW_HTTP_MAX_HEADER_LINE_BYTES", 8 * 1024, minimum=256)
    http_keep_alive_seconds: float = setting("SMSGW_HTTP_KEEP_ALIVE_SECONDS", 15.0, minimum=0.1)
    http_max_connections: int = setting("SMSGW_HTTP_MAX_CONNECTIONS", 1000, minimum=1)
    worker_healthcheck_seconds: int = setting("SMSGW_WORKER_HEALTHCHECK_SECONDS", 30, minimum=1)
    # Operations (docs/operations.md): log lines as text or JSON; a bearer token for /metrics.
    log_format: str = setting("SMSGW_LOG_FORMAT", "text", read=_log_format)
    metrics_token: str | None = setting("SMSGW_METRICS_TOKEN", None, secret=True)
    # Two-way messaging and compliance (docs/configuration.md, "Inbound messages and opt-out").
    optout_keywords: frozenset[str] = setting("SMSGW_OPTOUT_KEYWORDS", frozenset(DEFAULT_OPTOUT_KEYWORDS), read=_keywords)
    optin_keywords: frozenset[str] = setting("SMSGW_OPTIN_KEYWORDS", frozenset(DEFAULT_OPTIN_KEYWORDS), read=_keywords)
    promo_window: Window = setting("SMSGW_PROMO_WINDOW", DEFAULT_PROMO_WINDOW, read=_window)
    inbound_parts_timeout_seconds: int = setting("SMSGW_INBOUND_PARTS_TIMEOUT_SECONDS", 600, minimum=1)
    inbound_timeout_seconds: float = setting("SMSGW_INBOUND_TIMEOUT_SECONDS", 15.0, minimum=0.1)
    inbound_duplicate_seconds: int = setting("SMSGW_INBOUND_DUPLICATE_SECONDS", 60, minimum=0)
    # The built-in simulated carrier sends the lines of this file as subscribers' messages.
    simulator_inbound_file: str | None = setting("SMSGW_SIMULATOR_INBOUND_FILE", None)
    # Where the gateway's clock stands against the real one for the promotional window (tests).
    clock_offset_seconds: float = 0.0
    # A web console or portal sign-in lasts this long (docs/console.md).
    console_session_seconds: int = setting("SMSGW_CONSOLE_SESSION_SECONDS", 8 * 3600, minimum=1)
    # The partner SMPP server (docs/smpp-server.md): an ESME silent this long gets enquire_link,
    # twice this long is closed (so is a connection that does not bind in this time); TLS when
    # both files are set.
    smpp_idle_seconds: float = setting("SMSGW_SMPP_IDLE_SECONDS", 60.0, minimum=0.1)
    smpp_tls_cert_file: str | None = setting("SMSGW_SMPP_TLS_CERT_FILE", None)
    smpp_tls_key_file: str | None = setting("SMSGW_SMPP_TLS_KEY_FILE", None)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            url = StoreUrl.parse(env.get("SMSGW_DATABASE_URL") or DEFAULT_DATABASE_URL)
        except BadDatabaseUrl as exc:
            raise ConfigError(str(exc)) from None
        tz_name = env.get("SMSGW_TIMEZONE") or "Africa/Nairobi"
        try:
            timezone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"SMSGW_TIMEZONE={tz_name!r} is not a known time zone (e.g. Africa/Nairobi)") from None
        networks = load_network_table(env.get("SMSGW_NETWORKS_FILE"))
        declared = _from_declarations(cls, env)
        if declared["http_max_header_line_bytes"] > declared["http_max_head_bytes"]:
            raise ConfigError(
                f"SMSGW_HTTP_MAX_HEADER_LINE_BYTES={declared['http_max_header_line_bytes']} must not exceed "
                f"SMSGW_HTTP_MAX_HEAD_BYTES={declared['http_max_head_bytes']}"
            )
        if (declared["smpp_tls_cert_file"] is None) != (declared["smpp_tls_key_file"] is None):
            raise ConfigError("SMSGW_SMPP_TLS_CERT_FILE and SMSGW_SMPP_TLS_KEY_FILE are set together (TLS for the partner SMPP server) or not at all")
        return cls(database_url=url, timezone=timezone, networks=networks, **declared)


def load_network_table(path: str | None) -> NetworkTable:
    """The network table from a TOML file (see docs/configuration.md), Kenya by default."""
    if not path:
        return NetworkTable.from_mapping(KENYA)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"SMSGW_NETWORKS_FILE={path!r} cannot be read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"SMSGW_NETWORKS_FILE={path!r} is not valid TOML: {exc}") from None
    try:
        return NetworkTable.from_mapping(data)
    except NetworkTableError as exc:
        raise ConfigError(f"SMSGW_NETWORKS_FILE={path!r}: {exc}") from None
