"""What a bulk job asks of a table, validated before any SQL runs.

Identifiers must be plain names (quoted by the dialect later); an optional row filter must be
one boolean expression over the table's own columns and literals, which a real SQL parser
(sqlglot) proves and then re-renders, so the SQL that runs is exactly the expression that was
checked: no second statement, no subquery, no function call, no comment.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from sqlembed.errors import InvalidInput

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # fullmatch: "$" would accept a trailing newline
VectorType = Literal["float32", "float16"]
SyncMode = Literal["auto", "hash", "changes"]
"""How a bulk job finds its pending rows: auto (the table's change record where it has one, else
hashes), hash (compare every row's hash in the database), changes (require the change record)."""
Dialect = Literal["sqlite", "tsql"]


def content_hash(text: str) -> bytes:
    """SHA-256 of the text as UTF-16LE: the bytes T-SQL's HASHBYTES('SHA2_256', CAST(t AS nvarchar(max)))
    hashes, so ``sqlembed.embed_rows`` and bulk jobs share one state table."""
    return hashlib.sha256(text.encode("utf-16-le")).digest()


def _names(qualified: str) -> list[str]:
    return qualified.split(".")


@dataclass(frozen=True)
class TableSpec:
    url: str
    table: str
    key: str
    text: str
    vector: str
    where: str | None = None
    target_table: str | None = None
    chunk_table: str | None = None
    """Write chunk vectors here (parent key, chunk_no, chunk_offset, chunk_length, vector) instead of
    one vector per row; created by the job where it does not exist."""
    chunk_tokens: int | None = None
    chunk_overlap: int = 0

    def __post_init__(self) -> None:
        # Validated once, where it is built (an executor unpickles it without running this).
        self.validate_shape()

    def validate_shape(self) -> None:
        parts = _names(self.table)
        extra = [t for t in (self.target_table, self.chunk_table) if t]
        names = [*parts, self.key, self.text, self.vector, *(n for t in extra for n in _names(t))]
        if len(parts) > 2 or any(len(_names(t)) > 2 for t in extra) or not all(_IDENT.fullmatch(n) for n in names):
            raise InvalidInput("table and column names must be plain identifiers (schema.table allowed)")
        if self.target_table and self.chunk_table:
            raise InvalidInput("a job writes either a target table or a chunk table, not both")
        if self.chunk_table is not None:
            if self.chunk_tokens is None or not 8 <= self.chunk_tokens <= 8192:
                raise InvalidInput("chunk_tokens (8 to 8192) is required with a chunk table", param="chunk_tokens")
            if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
                raise InvalidInput("chunk_overlap must be >= 0 and below half of chunk_tokens", param="chunk_overlap")
        if self.where is not None:
            predicate_columns(self.where, "tsql" if self.url.startswith("mssql") else "sqlite")

    @property
    def schema_and_name(self) -> tuple[str | None, str]:
        schema, _, name = self.table.rpartition(".")
        return schema or None, name


class PendingRow(NamedTuple):
    """A row whose vector is missing or stale; ``text`` None means NULL or empty (a failed row)."""

    key: Any
    text: str | None
    hash: bytes | None
    """The content hash the database computed when it read the text (stored with the vector)."""


class WriteRow(NamedTuple):
    key: Any
    hash: bytes
    vector: Any  # float32 row (numpy), converted to the column's type by the target


class ChunkVector(NamedTuple):
    no: int
    offset: int
    """0-based character offset in the parent text; stored 1-based (AI_GENERATE_CHUNKS' convention)."""
    length: int
    vector: Any


class ChunkRow(NamedTuple):
    """All chunks of one parent row: written together, replacing the parent's previous chunks."""

    key: Any
    hash: bytes
    chunks: list[ChunkVector]


class ChangeSet(NamedTuple):
    """Keys changed since a sync version (change tracking / the SQLite change queue)."""

    version: int
    upserts: list[Any]
    deletes: list[Any]


# --- row filters ---------------------------------------------------------------------------------

def _allowed() -> tuple[type, ...]:
    from sqlglot import exp

    return (exp.And, exp.Or, exp.Not, exp.Paren, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is,
            exp.In, exp.Between, exp.Like, exp.Column, exp.Identifier, exp.Literal, exp.National, exp.Null,
            exp.Boolean, exp.Neg)


def _parse(where: str, dialect: Dialect) -> Any:
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError as e:  # pragma: no cover - sqlglot is in the spark extra
        raise InvalidInput("'where' needs sqlglot (pip install 'sqlembed[spark]')") from e
    if "\x00" in where:
        raise InvalidInput("'where' may not contain NUL characters", param="where")
    try:
        tree = sqlglot.parse_one(where, read=dialect, into=exp.Condition)
    except Exception:
        raise InvalidInput("'where' must be one boolean expression over the table's columns and literals "
                           "(it did not parse as one)", param="where") from None
    allowed = _allowed()
    for node in tree.walk():
        if node.comments:
            # The renderer drops comments, so one could never reach the database; refusing it
            # anyway tells the caller their filter is not what they think it is.
            raise InvalidInput("'where' may not contain comments", param="where")
        if not isinstance(node, allowed):
            raise InvalidInput(f"'where' may only compare columns with literals; {type(node).__name__.upper()} "
                               "is not allowed (point the job at a view for anything more)", param="where")
        if isinstance(node, exp.Column) and (node.table or not isinstance(node.this, exp.Identifier)):
            raise InvalidInput("'where' may only name the table's own columns, unqualified", param="where")
    if not isinstance(tree, exp.Condition) or isinstance(tree, exp.Column | exp.Literal):
        raise InvalidInput("'where' must be a boolean expression", param="where")
    return tree


def predicate_columns(where: str, dialect: Dialect) -> set[str]:
    """The column names the filter uses; raises InvalidInput if it is not a plain boolean expression."""
    from sqlglot import exp

    return {c.name for c in _parse(where, dialect).find_all(exp.Column)}


def render_predicate(where: str, dialect: Dialect, alias: str, columns: set[str]) -> str:
    """The filter as SQL for ``dialect``, every column quoted and qualified with ``alias``."""
    from sqlglot import exp

    tree = _parse(where, dialect)
    lower = {c.lower(): c for c in columns}
    for col in tree.find_all(exp.Column):
        real = lower.get(col.name.lower())
        if real is None:
            raise InvalidInput(f"'where' names column {col.name!r}, which the table does not have", param="where")
        col.set("this", exp.to_identifier(real, quoted=True))
        col.set("table", exp.to_identifier(alias))
    return str(tree.sql(dialect=dialect, identify=True, comments=False))
