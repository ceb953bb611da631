"""Errors the store raises to the layers above it."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database could not be reached or locked in time; nothing was written."""


class AlreadyExists(StoreError):
    pass


class NotFound(StoreError):
    pass


class IdempotencyConflict(StoreError):
    """Another request with the same Idempotency-Key committed first."""


class SchemaOutOfDate(StoreError):
    """The database schema is not the one this version needs; `smsgw migrate` fixes it."""
