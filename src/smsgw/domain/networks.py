"""The network table: which mobile network a number belongs to, and what a part costs there.

Networks are configuration (spec/CONTRACT.md, "Networks"). A number maps to a network by
an explicit prefix of its international digits when the table gives prefixes, else by the
original carrier libphonenumber names for it. Kenya is the default table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .compliance import Window
from .money import parse_units
from .msisdn import Msisdn, NumberNormaliser


@dataclass(frozen=True)
class Network:
    id: int
    name: str
    region: str
    carriers: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    price_cents: int = 100  # per part
    promo_footer: str | None = None  # appended to promotional messages
    promo_window: Window | None = None  # None: the gateway's SMSGW_PROMO_WINDOW


KENYA: dict[str, Any] = {
    "default_region": "KE",
    "networks": [
        {"id": 1, "name": "Safaricom", "region": "KE", "carriers": ["Safaricom"], "price": "1", "promo_footer": "STOP*456*9*5#"},
        {"id": 2, "name": "Airtel", "region": "KE", "carriers": ["Airtel"], "price": "1"},
        {"id": 3, "name": "Telkom", "region": "KE", "carriers": ["Telkom"], "price": "1"},
    ],
}


class NetworkTableError(ValueError):
    """The network table configuration is unusable; the message says where."""


@dataclass
class NetworkTable:
    default_region: str
    networks: dict[int, Network]
    normaliser: NumberNormaliser = field(repr=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> NetworkTable:
        default_region = data.get("default_region")
        if not isinstance(default_region, str) or not default_region:
            raise NetworkTableError("network table: default_region must be a region code such as KE")
        entries = data.get("networks")
        if not isinstance(entries, list) or not entries:
            raise NetworkTableError("network table: networks must be a non-empty list")
        networks: dict[int, Network] = {}
        for position, entry in enumerate(entries, start=1):
            network = _network_from_entry(entry, position)
            if network.id in networks:
                raise NetworkTableError(f"network table: id {network.id} appears twice")
            networks[network.id] = network
        regions = sorted({n.region for n in networks.values()} | {default_region})
        try:
            normaliser = NumberNormaliser(regions, default_region)
        except ValueError as exc:
            raise NetworkTableError(f"network table: {exc}") from None
        return cls(default_region, networks, normaliser)

    def __post_init__(self) -> None:
        self._by_prefix = {p: n for n in self.networks.values() for p in n.prefixes}
        self._prefix_lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)
        # libphonenumber's carrier prefixes resolved to networks once, so that a number costs
        # a couple of dict lookups. A prefix whose carrier no network takes maps to None: the
        # longest carrier prefix decides, as it does in libphonenumber.
        by_carrier = {(n.region, c): n for n in self.networks.values() for c in n.carriers}
        self._by_carrier_prefix: dict[str, Network | None] = {
            prefix: by_carrier.get((self.normaliser.region_of_prefix(prefix) or "", name))
            for prefix, name in self.normaliser.carrier_prefixes().items()
        }
        self._carrier_prefix_lengths = sorted({len(p) for p in self._by_carrier_prefix}, reverse=True)

    def normalise(self, raw: str) -> Msisdn | None:
        return self.normaliser.normalise(raw)

    def parse_ids(self, text: str) -> set[int]:
        """Comma-separated ids of networks of this table; ValueError naming the known ones."""
        try:
            ids = {int(part) for part in text.split(",") if part.strip()}
        except ValueError:
            raise ValueError(f"{text!r} is not a comma-separated list of network ids") from None
        unknown = ids - set(self.networks)
        if not ids or unknown:
            known = ", ".join(f"{n.id} {n.name}" for n in self.networks.values())
            raise ValueError(f"unknown network ids {sorted(unknown) or text!r}; the table has {known}")
        return ids

    def network_of(self, msisdn: Msisdn) -> Network | None:
        digits = msisdn.digits
        for length in self._prefix_lengths:
            network = self._by_prefix.get(digits[:length])
            if network is not None:
                return network
        for length in self._carrier_prefix_lengths:
            prefix = digits[:length]
            if prefix in self._by_carrier_prefix:
                return self._by_carrier_prefix[prefix]
        return None


def _network_from_entry(entry: Any, position: int) -> Network:
    where = f"network table entry {position}"
    if not isinstance(entry, Mapping):
        raise NetworkTableError(f"{where}: must be a table with id, name, region")
    net_id = entry.get("id")
    if not isinstance(net_id, int) or isinstance(net_id, bool) or net_id <= 0:
        raise NetworkTableError(f"{where}: id must be a positive integer")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise NetworkTableError(f"{where}: name must be a non-empty string")
    region = entry.get("region")
    if not isinstance(region, str) or not region:
        raise NetworkTableError(f"{where}: region must be a region code such as KE")
    carriers = entry.get("carriers", [])
    prefixes = entry.get("prefixes", [])
    if not isinstance(carriers, list) or not all(isinstance(c, str) and c for c in carriers):
        raise NetworkTableError(f"{where}: carriers must be a list of carrier names")
    if not isinstance(prefixes, list) or not all(isinstance(p, str) and p.isdigit() for p in prefixes):
        raise NetworkTableError(f"{where}: prefixes must be a list of digit strings (international form)")
    if not carriers and not prefixes:
        raise NetworkTableError(f"{where}: give carriers or prefixes, or no number can reach {name}")
    try:
        price_cents = parse_units(str(entry.get("price", "1")))
    except ValueError as exc:
        raise NetworkTableError(f"{where}: price {exc}") from None
    if price_cents <= 0:
        raise NetworkTableError(f"{where}: price must be positive")
    footer = entry.get("promo_footer")
    if footer is not None and (not isinstance(footer, str) or not footer.strip()):
        raise NetworkTableError(f"{where}: promo_footer must be a non-empty string")
    window = entry.get("promo_window")
    try:
        promo_window = Window.parse(window) if isinstance(window, str) else None
    except ValueError as exc:
        raise NetworkTableError(f"{where}: promo_window {exc}") from None
    if window is not None and not isinstance(window, str):
        raise NetworkTableError(f"{where}: promo_window must be a string like 08:00-18:00")
    return Network(net_id, name, region, tuple(carriers), tuple(prefixes), price_cents, footer, promo_window)
