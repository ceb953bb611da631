"""Errors the store raises to the layers above it."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database could not be reached or locked in time; the transaction did not commit."""


class CommitOutcomeUnknown(StoreError):
    """The connection failed during COMMIT: the transaction may or may not have landed."""


class OutcomeUnknown(StoreError):
    """A batch's commit failed midway and the store could not be asked since whether it landed."""


class AlreadyExists(StoreError):
    pass


class NotFound(StoreError):
    pass


class IdempotencyConflict(StoreError):
    """Another request with the same Idempotency-Key committed first."""


class SchemaOutOfDate(StoreError):
    """The database schema is not the one this version needs; `smsgw migrate` fixes it."""
