"""Domain errors, their registry for process boundaries, and the one scrubbed exception summary.

Only ``sqlembed.api.errors`` maps them to HTTP."""

from __future__ import annotations

import re

# Secrets a driver or library may echo: key=value pairs of connection strings and URL passwords.
_SECRET_PAIR = re.compile(r"(?i)\b(pwd|password|accesstoken|access_token|api[_-]?key|secret|token)(\s*[=:]\s*)"
                          r"(\{[^}]*\}|[^;,'\"\s&]+)")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


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


class DeployError(SqlembedError):
    """A T-SQL batch failed during ``sqlembed db deploy``: names the file and the batch's first line."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line = file, line


class DatabaseUnavailable(SqlembedError):
    """A bulk job's database stayed unreachable (or locked) past the retry budget."""


# --- one registry for every transport that carries an error between processes (a front and the
# engine host, the driver and an online executor task): name -> class, and back.
WIRE: dict[str, type[SqlembedError]] = {
    c.__name__: c for c in (SqlembedError, InvalidInput, UnprocessableInput, Unauthorized, PayloadTooLarge,
                            UnsupportedMediaType, ModelNotFound, Overloaded, NotReady, BackendUnavailable,
                            ModelBuildError, JobNotFound, StoreUnavailable, DatabaseUnavailable)
}
"""DeployError is not here: it never crosses a process boundary (the CLI raises and reports it)."""


def summary(exc: BaseException, *, limit: int = 300, secrets: tuple[str, ...] = ()) -> str:
    """``Type: first line`` of an exception, cut to ``limit`` characters with the given secrets
    replaced: what a log line, a job record or an error message may show of a failure it does
    not own (drivers echo connection strings, Spark wraps executor errors in pages of JVM text)."""
    text = str(exc).strip()
    lines = text.splitlines()
    # Spark: the Python error is the line that names one, below the JVM's preamble.
    named = [ln.strip() for ln in lines[1:] if "Error:" in ln or "Exception:" in ln]
    # py4j prints the Java exception as "\t: org.apache...Exception: ...": the ": " is not the message.
    first = named[-1].lstrip(": \t") if named else (lines[0].strip() if lines else "")
    for s in secrets:
        if s:
            first = first.replace(s, "<secret>")
    first = _URL_PASSWORD.sub(r"\1<secret>@", _SECRET_PAIR.sub(r"\1\2<secret>", first))
    out = f"{type(exc).__name__}: {first}" if first and not named else (first or type(exc).__name__)
    return out[:limit]


def to_wire(exc: BaseException) -> dict[str, object]:
    """A JSON-able body for the other process; an error that is not ours crosses as its type only."""
    if isinstance(exc, SqlembedError):
        return {"type": type(exc).__name__, "message": exc.message, "param": exc.param,
                "retry_after": getattr(exc, "retry_after", None)}
    # Its summary travels as `detail`, for the receiver's log only: callers see the type.
    return {"type": "SqlembedError", "message": f"the engine failed: {type(exc).__name__}", "detail": summary(exc)}


def from_wire(body: dict[str, object]) -> SqlembedError:
    cls = WIRE.get(str(body.get("type")), SqlembedError)
    message = str(body.get("message") or "error")
    if cls is Overloaded:
        return Overloaded(message, retry_after=float(body.get("retry_after") or 1))  # type: ignore[arg-type]
    param = body.get("param")
    return cls(message, param=param if isinstance(param, str) else None)
