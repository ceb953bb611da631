"""Which SMSC connection carries which network: `--smsc` URLs (spec/CONTRACT.md, "Operator
CLI" and "SMPP conventions")."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 2775
BIND_MODES = ("transceiver", "transmitter_receiver")
CONCATENATION = ("udh", "sar", "payload")


class RouteError(ValueError):
    pass


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    window: int = 64
    tps: float = 0.0  # 0: no limit of our own
    networks: frozenset[int] | None = None  # None: every network of the table
    bind_mode: str = "transceiver"
    concatenation: str = "udh"
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0  # wait for a submit_sm_resp before it counts as unanswered
    priority: int = 1  # routes of a network are tried best (lowest) priority first
    weight: int = 1  # share of traffic among the healthy routes of one priority

    def serves(self, network_id: int) -> bool:
        return self.networks is None or network_id in self.networks

    @property
    def display(self) -> str:
        """Where it binds, without the password."""
        return (
            f"{self.name} (smpp://{self.system_id}@{self.host}:{self.port}, window {self.window}, tps {self.tps or 'unlimited'}, "
            f"priority {self.priority}, weight {self.weight})"
        )


@dataclass(frozen=True)
class UpstreamConfig:
    """A route through another provider of this API family (connectors/upstream.py)."""

    name: str
    base_url: str  # scheme, host and port: the API's paths go after it
    partner_id: str
    api_key: str = field(repr=False)
    shortcode: str | None = None  # None: each message's own sender id
    window: int = 1000  # messages sent and not yet recorded; a sendbulk batch holds at most 1000
    tps: float = 0.0  # no limit of ours: the upstream's own rate limit answers 429, retried
    networks: frozenset[int] | None = None
    priority: int = 1
    weight: int = 1
    poll_rate: float | None = None  # getdlr requests per second, at most; None: Settings.upstream_poll_rate
    poll_interval: float = 5.0  # seconds between two getdlr of one message
    # Authenticates the upstream's delivery-report pushes to /upstream/NAME/dlr; None: polling only.
    secret: str | None = field(default=None, repr=False)

    def serves(self, network_id: int) -> bool:
        return self.networks is None or network_id in self.networks

    @property
    def display(self) -> str:
        return f"{self.name} (sendbulk to {self.base_url} as {self.partner_id}, priority {self.priority}, weight {self.weight})"


RouteConfig = ConnectorConfig | UpstreamConfig
UPSTREAM_SCHEMES = {"sendbulk+https": "https", "sendbulk+http": "http"}


def parse_route_url(url: str, known_networks: set[int] | None = None) -> RouteConfig:
    """An `--smsc` URL: an SMPP bind (`smpp://`) or another provider's API (`sendbulk+https://`)."""
    if urlsplit(url).scheme in UPSTREAM_SCHEMES:
        return parse_upstream_url(url, known_networks)
    return parse_smsc_url(url, known_networks)


def parse_upstream_url(url: str, known_networks: set[int] | None = None) -> UpstreamConfig:
    """`sendbulk+https://PARTNER_ID:API_KEY@HOST[:PORT]/?shortcode=S` and the options networks,
    priority, weight, window, poll_rate, poll_interval, secret and name (default PARTNER_ID@HOST)."""
    parts = urlsplit(url)
    scheme = UPSTREAM_SCHEMES.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise RouteError(f"--smsc {_masked(url)}: give an upstream as sendbulk+https://PARTNER_ID:API_KEY@HOST/?shortcode=S")
    try:
        port = parts.port
    except ValueError:
        raise RouteError(f"--smsc {_masked(url)}: the port is not a number") from None
    partner_id, api_key = unquote(parts.username or ""), unquote(parts.password or "")
    if not partner_id or not api_key:
        raise RouteError(f"--smsc {_masked(url)}: give the upstream's credentials as sendbulk+https://PARTNER_ID:API_KEY@HOST/")
    options = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(options) - {"shortcode", "networks", "priority", "weight", "window", "poll_rate", "poll_interval", "secret", "name"}
    if unknown:
        raise RouteError(f"--smsc {_masked(url)}: unknown options {', '.join(sorted(unknown))}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    base = f"{scheme}://{host}" + (f":{port}" if port else "") + parts.path.rstrip("/")
    return UpstreamConfig(
        name=(options.get("name") or f"{partner_id}@{parts.hostname}")[:64],
        base_url=base,
        partner_id=partner_id,
        api_key=api_key,
        shortcode=options.get("shortcode") or None,
        window=_number(options, "window", 1000, int, url, minimum=1, maximum=100_000),
        networks=_networks(options, url, known_networks),
        priority=_number(options, "priority", 1, int, url, minimum=1, maximum=100),
        weight=_number(options, "weight", 1, int, url, minimum=1, maximum=1000),
        poll_rate=_number(options, "poll_rate", None, float, url, minimum=0.1, maximum=10_000),
        poll_interval=_number(options, "poll_interval", 5.0, float, url, minimum=0.1, maximum=3600),
        secret=options.get("secret") or None,
    )


def _networks(options: dict[str, str], url: str, known_networks: set[int] | None) -> frozenset[int] | None:
    if not options.get("networks"):
        return None
    try:
        networks = frozenset(int(n) for n in options["networks"].split(",") if n.strip())
    except ValueError:
        raise RouteError(f"--smsc {_masked(url)}: networks must be comma-separated network ids") from None
    if known_networks is not None and not networks <= known_networks:
        raise RouteError(f"--smsc {_masked(url)}: unknown network ids {sorted(networks - known_networks)}")
    return networks


def parse_smsc_url(url: str, known_networks: set[int] | None = None) -> ConnectorConfig:
    """`smpp://SYSTEM_ID:PASSWORD@HOST:PORT?window=64&tps=500&networks=1,2` and the options
    bind=transceiver|transmitter_receiver, concat=udh|sar|payload, system_type=X,
    enquire_link=SECONDS, name=NAME, priority=N (1 first), weight=N (docs/routing.md). The name identifies the connection in the store
    (receipts are matched per connection), so it must stay the same across restarts; it
    defaults to SYSTEM_ID@HOST:PORT."""
    parts = urlsplit(url)
    if parts.scheme != "smpp":
        raise RouteError(f"--smsc {_masked(url)}: the scheme must be smpp://")
    if not parts.hostname:
        raise RouteError(f"--smsc {_masked(url)}: no host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise RouteError(f"--smsc {_masked(url)}: the port is not a number") from None
    system_id = unquote(parts.username or "")
    password = unquote(parts.password or "")
    if not system_id:
        raise RouteError(f"--smsc {_masked(url)}: give the bind credentials as smpp://SYSTEM_ID:PASSWORD@HOST:PORT")
    if len(system_id) > 15 or len(password) > 8:
        raise RouteError(f"--smsc {_masked(url)}: SMPP 3.4 allows a system_id of 15 and a password of 8 characters at most")
    options = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(options) - {
        "window",
        "tps",
        "networks",
        "bind",
        "concat",
        "system_type",
        "enquire_link",
        "response_timeout",
        "name",
        "priority",
        "weight",
    }
    if unknown:
        raise RouteError(f"--smsc {_masked(url)}: unknown options {', '.join(sorted(unknown))}")
    window = _number(options, "window", 64, int, url, minimum=1, maximum=10_000)
    tps = _number(options, "tps", 0.0, float, url, minimum=0, maximum=1_000_000)
    enquire = _number(options, "enquire_link", 30.0, float, url, minimum=1, maximum=3600)
    response_timeout = _number(options, "response_timeout", 10.0, float, url, minimum=0.1, maximum=600)
    priority = _number(options, "priority", 1, int, url, minimum=1, maximum=100)
    weight = _number(options, "weight", 1, int, url, minimum=1, maximum=1000)
    networks = _networks(options, url, known_networks)
    bind_mode = options.get("bind", "transceiver")
    if bind_mode not in BIND_MODES:
        raise RouteError(f"--smsc {_masked(url)}: bind must be one of {', '.join(BIND_MODES)}")
    concatenation = options.get("concat", "udh")
    if concatenation not in CONCATENATION:
        raise RouteError(f"--smsc {_masked(url)}: concat must be one of {', '.join(CONCATENATION)}")
    name = options.get("name") or f"{system_id}@{parts.hostname}:{port}"
    return ConnectorConfig(
        name=name[:64],
        host=parts.hostname,
        port=port,
        system_id=system_id,
        password=password,
        system_type=options.get("system_type", ""),
        window=window,
        tps=tps,
        networks=networks,
        bind_mode=bind_mode,
        concatenation=concatenation,
        enquire_link_interval=enquire,
        response_timeout=response_timeout,
        priority=priority,
        weight=weight,
    )


def has_alternative(config: RouteConfig, configs: list[RouteConfig], table_networks: set[int]) -> bool:
    """Whether another connection serves one of this one's networks (its messages can fail over)."""
    mine = table_networks if config.networks is None else set(config.networks)
    return any(
        other is not config and other.name != config.name and mine & (table_networks if other.networks is None else set(other.networks))
        for other in configs
    )


def routed_networks(configs: list[RouteConfig], table_networks: set[int]) -> frozenset[int]:
    """The networks some connection carries: the others get 1002 at the API."""
    served: set[int] = set()
    for config in configs:
        served |= table_networks if config.networks is None else set(config.networks)
    return frozenset(served & table_networks)


class RouteState(enum.Enum):
    UP = "up"
    DOWN = "down"  # out of the choice until its probe time
    PROBING = "probing"  # one message may go as a probe; its verdict puts the route up or down again


@dataclass
class RouteHealth:
    """Whether a route takes traffic, from the verdicts of its submits (a circuit breaker).

    `failure_threshold` verdicts to retry in a row (throttled past the connector's own
    retries, no answer, not bound) put the route down for `probe_seconds`; then one message
    goes as a probe (half-open): accepted, or refused for the message's own sake (the route
    answered), puts it up; another retry puts it down again for twice as long, at most
    `max_probe_seconds`. Times are the caller's monotonic seconds."""

    failure_threshold: int = 5
    probe_seconds: float = 5.0
    max_probe_seconds: float = 60.0
    failures: int = 0
    down_until: float | None = None
    probe_in_flight: bool = False
    _wait: float = 0.0

    def state(self, now: float) -> RouteState:
        if self.down_until is None:
            return RouteState.UP
        return RouteState.DOWN if now < self.down_until else RouteState.PROBING

    def usable(self, now: float) -> bool:
        """May take a message now: up, or probing with no probe under way."""
        state = self.state(now)
        return state is RouteState.UP or (state is RouteState.PROBING and not self.probe_in_flight)

    def taken(self, now: float) -> bool:
        """A message was given to the route; True when it is the probe."""
        if self.state(now) is RouteState.PROBING and not self.probe_in_flight:
            self.probe_in_flight = True
            return True
        return False

    def answered(self, now: float, *, retry: bool, probe: bool) -> bool:
        """Records a verdict; True when it put the route down (a failover)."""
        if probe:
            self.probe_in_flight = False
        if not retry:
            self.failures = 0
            self.down_until = None
            self._wait = 0.0
            return False
        self.failures += 1
        if probe:
            self._wait = min(self.max_probe_seconds, max(self.probe_seconds, self._wait * 2))
            self.down_until = now + self._wait
            return False
        if self.down_until is None and self.failures >= self.failure_threshold:
            self._wait = self.probe_seconds
            self.down_until = now + self._wait
            return True
        return False


def _number(options: dict[str, str], key: str, default, kind, url: str, minimum, maximum):
    if key not in options:
        return default
    try:
        value = kind(options[key])
    except ValueError:
        raise RouteError(f"--smsc {_masked(url)}: {key} must be a number") from None
    if not minimum <= value <= maximum:
        raise RouteError(f"--smsc {_masked(url)}: {key} must be between {minimum} and {maximum}")
    return value


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        url = url.replace(f":{parts.password}@", ":***@", 1)
    return re.sub(r"([?&]secret=)[^&]*", r"\1***", url)
