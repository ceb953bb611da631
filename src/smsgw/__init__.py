"""smsgw: a bulk SMS gateway."""

__version__ = "0.1.0"
