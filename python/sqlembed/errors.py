"""Domain errors. Only ``sqlembed.api.errors`` maps them to HTTP."""

from __future__ import annotations


class SqlembedError(Exception):
    """Base class; ``message`` is safe to show to the caller (never contains secrets)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(SqlembedError):
    """The request is malformed: bad JSON, wrong types, empty input, too long with truncate=false."""


class UnprocessableInput(SqlembedError):
    """Well-formed, but this model cannot satisfy it (dimensions too large, token-id input)."""


class Unauthorized(SqlembedError):
    """Missing or wrong API key."""


class PayloadTooLarge(SqlembedError):
    """Request body over the configured limit."""


class UnsupportedMediaType(SqlembedError):
    """Content-Type that cannot carry JSON."""


class ModelNotFound(SqlembedError):
    """Unknown model name (strict mode) or no built model on disk."""


class Overloaded(SqlembedError):
    """Admission queue full; the caller should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotReady(SqlembedError):
    """The model is still loading or warming up."""


class BackendUnavailable(SqlembedError):
    """A backend cannot be used here (library missing, engine mismatch)."""


class ModelBuildError(SqlembedError):
    """Exporting or quantizing a model failed."""


class JobNotFound(SqlembedError):
    """No job with that id."""


class StoreUnavailable(SqlembedError):
    """The job store cannot be written (disk full, read-only, I/O error); online embedding is unaffected."""


class DatabaseUnavailable(SqlembedError):
    """A bulk job's database stayed unreachable (or locked) past the retry budget."""
