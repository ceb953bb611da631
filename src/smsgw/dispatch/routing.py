"""Which SMSC connection carries which network: `--smsc` URLs (spec/CONTRACT.md, "Operator
CLI" and "SMPP conventions")."""

from __future__ import annotations

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

    def serves(self, network_id: int) -> bool:
        return self.networks is None or network_id in self.networks

    @property
    def display(self) -> str:
        """Where it binds, without the password."""
        return f"{self.name} (smpp://{self.system_id}@{self.host}:{self.port}, window {self.window}, tps {self.tps or 'unlimited'})"


def parse_smsc_url(url: str, known_networks: set[int] | None = None) -> ConnectorConfig:
    """`smpp://SYSTEM_ID:PASSWORD@HOST:PORT?window=64&tps=500&networks=1,2` and the options
    bind=transceiver|transmitter_receiver, concat=udh|sar|payload, system_type=X,
    enquire_link=SECONDS, name=NAME. The name identifies the connection in the store
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
    unknown = set(options) - {"window", "tps", "networks", "bind", "concat", "system_type", "enquire_link", "response_timeout", "name"}
    if unknown:
        raise RouteError(f"--smsc {_masked(url)}: unknown options {', '.join(sorted(unknown))}")
    window = _number(options, "window", 64, int, url, minimum=1, maximum=10_000)
    tps = _number(options, "tps", 0.0, float, url, minimum=0, maximum=1_000_000)
    enquire = _number(options, "enquire_link", 30.0, float, url, minimum=1, maximum=3600)
    response_timeout = _number(options, "response_timeout", 10.0, float, url, minimum=0.1, maximum=600)
    networks = None
    if options.get("networks"):
        try:
            networks = frozenset(int(n) for n in options["networks"].split(",") if n.strip())
        except ValueError:
            raise RouteError(f"--smsc {_masked(url)}: networks must be comma-separated network ids") from None
        if known_networks is not None and not networks <= known_networks:
            raise RouteError(f"--smsc {_masked(url)}: unknown network ids {sorted(networks - known_networks)}")
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
    )


def routed_networks(configs: list[ConnectorConfig], table_networks: set[int]) -> frozenset[int]:
    """The networks some connection carries: the others get 1002 at the API."""
    served: set[int] = set()
    for config in configs:
        served |= table_networks if config.networks is None else set(config.networks)
    return frozenset(served & table_networks)


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
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
