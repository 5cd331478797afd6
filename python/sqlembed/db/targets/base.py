"""What a bulk job does to a table, once per database kind: the contract and the shared plumbing.

``BulkTarget`` is the interface a job and its executor tasks use: ``check`` (resolve names against
the catalog, on the driver), ``slice_bounds`` (one query), ``pending_pages`` (stream the rows that
need a vector, decided in the database so unchanged texts never cross the network) and ``write``
(vectors plus state rows in one transaction, idempotent). ``sqlite.py`` and ``mssql.py`` each
implement it with their own SQL; nothing here branches on the dialect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from sqlembed.db.targets.spec import ChangeSet, ChunkRow, Dialect, PendingRow, TableSpec, VectorType, WriteRow
from sqlembed.errors import DatabaseUnavailable, summary

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_SAMPLE_ROWS_PER_SLICE = 4
"""A dry run's sample: the first pending rows of many small key slices, so it follows the whole
key range (texts often differ along it: old rows short, new ones long) rather than a few runs."""


@dataclass(frozen=True)
class EmbeddingId:
    """What a stored vector was computed with; a row whose state differs is embedded again."""

    model_id: str
    dimensions: int
    vector_type: VectorType = "float32"
    prompt: str | None = None
    chunk_tokens: int | None = None
    chunk_overlap: int = 0

    @property
    def variant(self) -> str:
        """The same string ``sqlembed.embed_rows`` builds (d<dims>;<type>[;<prompt>]); chunked jobs add
        their chunking, so changing it re-embeds every row."""
        chunks = f";c{self.chunk_tokens}/{self.chunk_overlap}" if self.chunk_tokens else ""
        return f"d{self.dimensions};{self.vector_type}" + (f";{self.prompt}" if self.prompt else "") + chunks


@dataclass(frozen=True)
class TableInfo:
    """The table as the catalog names it, resolved once on the driver and shipped to executor tasks."""

    schema: str | None
    name: str
    key: str
    text: str
    vector: str
    key_type: str
    """The key column's SQL type as declared (e.g. ``int``, ``nvarchar(64)``)."""
    key_collation: str | None
    columns: frozenset[str]
    state_source: str
    """The source table's name in the state table: ``[schema].[name]`` on SQL Server (as T-SQL's QUOTENAME
    builds it), the plain table name on SQLite. Where the vectors go is ``destination``."""
    vector_dims: int | None = None
    vector_type: VectorType = "float32"
    target_schema: str | None = None
    target_name: str | None = None
    predicate: str | None = None
    """The row filter, parsed, checked and rendered for this database (alias ``t``)."""
    database: str | None = None
    chunk_schema: str | None = None
    chunk_name: str | None = None
    primary_key: tuple[str, ...] = ()
    target_exists: bool = True
    """False while a target table the job will create does not exist yet (``prepare`` creates it):
    every row then lacks its vector. Read-only steps (a dry run) must not join a missing table."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chunked(self) -> bool:
        return self.chunk_name is not None

    @property
    def destination(self) -> str:
        """Where the vectors are written, ``[schema].[table].[vector column]``: the source table (vectors in
        place), the target table or the chunk table. Part of every state row's key, so one table embedded
        into two places (two vector columns, a column and a target table) keeps one state per place, and
        what a sync version is kept for."""
        where = self.chunk_name or self.target_name or self.name
        schema = self.chunk_schema if self.chunk_name else self.target_schema if self.target_name else self.schema
        return f"[{schema or ''}].[{where}].[{self.vector}]"


class BulkTarget(Protocol):
    dialect: ClassVar[Dialect]

    def check(self, expect_database: str | None = None) -> TableInfo: ...

    def prepare(self, info: TableInfo, eid: EmbeddingId) -> TableInfo:
        """Create the target table where it does not exist yet; check the vector column's size."""
        ...

    def slice_bounds(self, info: TableInfo, slices: int) -> tuple[int, list[tuple[Any, Any]]]:
        """(rows in scope, key ranges [lo, hi) of about equal row counts; None means unbounded)."""
        ...

    def pending_pages(self, info: TableInfo, lo: Any, hi: Any, eid: EmbeddingId,
                      page_rows: int) -> Iterator[list[PendingRow]]:
        """Rows of [lo, hi) whose vector is missing or was computed from another text or embedding,
        in key order, ``page_rows`` at a time (keyset pages: nothing is held open between pages)."""
        ...

    def write(self, info: TableInfo, rows: Sequence[WriteRow], eid: EmbeddingId) -> int: ...

    def write_chunks(self, info: TableInfo, rows: Sequence[ChunkRow], eid: EmbeddingId) -> int:
        """Each parent's chunks replace its previous ones, with its state row, in one transaction."""
        ...

    # --- living tables: only what changed (change tracking, or SQLite's trigger-fed queue)

    def tracking(self, info: TableInfo) -> bool:
        """Whether the database records changes to this table (so a sync reads only those)."""
        ...

    def enable_tracking(self, info: TableInfo) -> None: ...

    def changes(self, info: TableInfo, since: int | None) -> ChangeSet | None:
        """Keys changed since ``since`` and the version to store after the sync; None when ``since``
        is too old (the changes were cleaned up) or absent: then the whole table is compared."""
        ...

    def current_version(self, info: TableInfo) -> int: ...

    def sync_version(self, info: TableInfo, eid: EmbeddingId) -> int | None:
        """The change version the last successful sync of this target, with this embedding, reached."""
        ...

    def save_sync_version(self, info: TableInfo, eid: EmbeddingId, version: int) -> None: ...

    def pending_for_keys(self, info: TableInfo, keys: Sequence[Any], eid: EmbeddingId) -> list[PendingRow]:
        """Of these keys, the rows that need a vector (the same test as ``pending_pages``)."""
        ...

    def pending_summary(self, info: TableInfo, eid: EmbeddingId, sample_rows: int) -> PendingSummary:
        """Read only: how many rows ``pending_pages`` would return over the whole table, their
        texts' stored size, and a sample of their texts spread over the key range."""
        ...

    def stored_bytes(self, text: str) -> int:
        """A text's size as this database stores it (what ``pending_summary`` sums)."""
        ...

    def delete_rows(self, info: TableInfo, keys: Sequence[Any]) -> int:
        """Rows gone from the table: their state rows, chunks (chunked jobs) or target rows go too."""
        ...

    def deleted_keys(self, info: TableInfo) -> list[Any]:
        """Keys with a state row but no row in the table any more (the hash-scan path's deletes)."""
        ...

    def text_units(self, text: str, offset: int, length: int) -> tuple[int, int]:
        """A chunk's character position in the units the database's SUBSTRING counts."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PendingSummary:
    rows: int
    text_bytes: int
    sample: list[str]


class SqlTarget:
    """SQLAlchemy engine, identifier quoting and bounded retries shared by the implementations."""

    dialect: ClassVar[Dialect]
    text_encoding: ClassVar[str]
    """How ``_count_sql`` measures a text: SQLite stores UTF-8; SQL Server's pending query reads the
    text as nvarchar (UTF-16)."""

    def __init__(self, spec: TableSpec, retry_s: float = 60.0) -> None:
        self.spec = spec
        self.retry_s = retry_s
        self.engine = self._create_engine(spec.url)
        import sqlalchemy.exc

        # Errors worth a retry: SQLAlchemy's, and the driver's own from raw cursors (writes use them).
        self._transient: tuple[type[BaseException], ...] = (sqlalchemy.exc.OperationalError,)
        dbapi = getattr(self.engine.dialect, "dbapi", None)
        if dbapi is not None and hasattr(dbapi, "OperationalError"):
            self._transient += (dbapi.OperationalError,)
        self.quote: Callable[[str], str] = self.engine.dialect.identifier_preparer.quote

    def _create_engine(self, url: str) -> Any:
        from sqlalchemy import create_engine

        return create_engine(url)

    def close(self) -> None:
        """Close pooled connections: a long-lived service or Python worker must not keep one per job."""
        self.engine.dispose()

    # The driver-side steps, each one transaction, retried like the executors' reads and writes.

    def check(self, expect_database: str | None = None) -> TableInfo:
        return self.retrying("checking the table", lambda: self._check(expect_database))

    def prepare(self, info: TableInfo, eid: EmbeddingId) -> TableInfo:
        return self.retrying("preparing the target", lambda: self._prepare(info, eid))

    def slice_bounds(self, info: TableInfo, slices: int) -> tuple[int, list[tuple[Any, Any]]]:
        return self.retrying("planning key slices", lambda: self._slice_bounds(info, slices))

    def pending_pages(self, info: TableInfo, lo: Any, hi: Any, eid: EmbeddingId,
                      page_rows: int) -> Iterator[list[PendingRow]]:
        """Keyset pages of [lo, hi): each page starts after the last key of the one before, so
        nothing is held open between pages and a page costs an index seek, not an OFFSET scan."""
        k = self.quote(info.key)
        params: dict[str, Any] = {**self._state_params(info, eid), "page": page_rows}
        bounds = []
        if hi is not None:
            bounds.append(f"t.{k} < :hi")
            params["hi"] = hi
        after: Any = None
        first = True
        while True:
            conds = list(bounds)
            if first and lo is not None:
                conds.append(f"t.{k} >= :lo")
                params["lo"] = lo
            elif not first:
                conds.append(f"t.{k} > :after")
                params["after"] = after
            sql = self._page_sql(info, conds)
            rows = self.retrying("reading pending rows", lambda sql=sql: self._rows(sql, params))  # type: ignore[misc]
            if rows:
                yield rows
            if len(rows) < page_rows:
                return
            after, first = rows[-1].key, False

    def pending_summary(self, info: TableInfo, eid: EmbeddingId, sample_rows: int) -> PendingSummary:
        from sqlalchemy import text as sql_text

        params = self._state_params(info, eid)

        def count() -> tuple[int, int]:
            with self.engine.connect() as conn:
                n, size = conn.execute(sql_text(self._count_sql(info)), params).one()
            return int(n or 0), int(size or 0)

        rows, size = self.retrying("counting pending rows", count)
        sample: list[str] = []
        if rows and sample_rows > 0:
            # The first pending rows of many key slices (the job's own NTILE planning query): spread
            # over the table, each page an index seek like the executors' reads, never a sort of it all.
            _, bounds = self.slice_bounds(info, max(1, sample_rows // _SAMPLE_ROWS_PER_SLICE))
            per = -(-sample_rows // max(1, len(bounds)))
            for lo, hi in bounds:
                page = next(iter(self.pending_pages(info, lo, hi, eid, per)), [])
                sample += [r.text for r in page if r.text]
        return PendingSummary(rows, size, sample[:sample_rows])

    def stored_bytes(self, text: str) -> int:
        return len(text.encode(self.text_encoding))

    def pending_for_keys(self, info: TableInfo, keys: Sequence[Any], eid: EmbeddingId) -> list[PendingRow]:
        import orjson

        params = {**self._state_params(info, eid), "keys": orjson.dumps(list(keys), default=str).decode()}
        sql = self._keys_sql(info)
        return self.retrying("reading changed rows", lambda: self._rows(sql, params))

    def write(self, info: TableInfo, rows: Sequence[WriteRow], eid: EmbeddingId) -> int:
        """Rows actually written: a row deleted since it was read (or whose key no longer matches) gets
        neither a vector nor a state row, and is counted out with a warning."""
        if not rows:
            return 0
        done = self.retrying(f"writing {len(rows)} vectors", lambda: self._write(info, rows, eid))
        return self._vanished(info, len(rows), done)

    def write_chunks(self, info: TableInfo, rows: Sequence[ChunkRow], eid: EmbeddingId) -> int:
        if not rows:
            return 0
        done = self.retrying(f"writing the chunks of {len(rows)} rows", lambda: self._write_chunks(info, rows, eid))
        return self._vanished(info, len(rows), done)

    @staticmethod
    def _vanished(info: TableInfo, given: int, done: int) -> int:
        if done < given:
            # Counts only: keys and texts are the customer's data and stay out of the logs.
            log.warning("%d of %d rows read from %s were not written to %s: deleted since they were read, or "
                        "their key no longer matches a row", given - done, given, info.state_source, info.destination)
        return done

    @staticmethod
    def _state_params(info: TableInfo, eid: EmbeddingId) -> dict[str, Any]:
        return {"src": info.state_source, "dst": info.destination, "mid": eid.model_id, "var": eid.variant}

    def _rows(self, sql: str, params: dict[str, Any]) -> list[PendingRow]:
        from sqlalchemy import text as sql_text

        with self.engine.connect() as conn:
            return [PendingRow(key, text if h is not None else None, bytes(h) if h is not None else None)
                    for key, text, h in conn.execute(sql_text(sql), params)]

    # The dialect's SQL, one hook per statement.

    def _page_sql(self, info: TableInfo, conds: list[str]) -> str:
        """One page of pending rows (``:page`` of them at most) meeting ``conds``, in key order."""
        raise NotImplementedError

    def _keys_sql(self, info: TableInfo) -> str:
        """The pending rows among the JSON list of keys ``:keys``."""
        raise NotImplementedError

    def _count_sql(self, info: TableInfo) -> str:
        """(rows, their texts' stored bytes) of every pending row: the page query's test, counted."""
        raise NotImplementedError

    def _write(self, info: TableInfo, rows: Sequence[WriteRow], eid: EmbeddingId) -> int:
        raise NotImplementedError

    def _write_chunks(self, info: TableInfo, rows: Sequence[ChunkRow], eid: EmbeddingId) -> int:
        raise NotImplementedError

    def _check(self, expect_database: str | None) -> TableInfo:
        raise NotImplementedError

    def _prepare(self, info: TableInfo, eid: EmbeddingId) -> TableInfo:
        raise NotImplementedError

    def _slice_bounds(self, info: TableInfo, slices: int) -> tuple[int, list[tuple[Any, Any]]]:
        """(rows, key ranges) from one NTILE query; tiles that start on the same key merge."""
        from sqlalchemy import text as sql_text

        with self.engine.connect() as conn:
            tiles = conn.execute(sql_text(self._tiles_sql(info)), {"n": max(1, slices)}).fetchall()
        starts: list[Any] = []
        for _, start, _ in tiles:
            if not starts or start != starts[-1]:
                starts.append(start)
        return sum(int(n) for _, _, n in tiles), pairs(starts)

    def _tiles_sql(self, info: TableInfo) -> str:
        """(tile, first key, rows) per NTILE(:n) tile of the filtered table, in key order."""
        raise NotImplementedError

    def qualified(self, schema: str | None, name: str) -> str:
        return (self.quote(schema) + "." if schema else "") + self.quote(name)

    def retrying(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` (one transaction), retrying while the database is unreachable or locked.

        Bounded: exponential backoff (0.5 s doubling to 8 s) for at most ``retry_s`` seconds, then
        a clear error. A transaction either commits whole or not at all, so a retry never leaves
        half a chunk written.
        """
        deadline = time.monotonic() + self.retry_s
        delay = 0.5
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except self._transient as exc:
                first = summary(exc, limit=200)
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailable(
                        f"the database stayed unavailable for {self.retry_s:g} s while {what} "
                        f"({attempt} attempts; last error: {first})") from None
                log.warning("database unavailable while %s (%s); retrying in %.1f s",
                            what, first, delay)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
                self.engine.dispose()  # drop pooled connections that may be dead


def collapse(changes: Sequence[tuple[Any, str]]) -> tuple[list[Any], list[Any]]:
    """(upserts, deletes) from (key, operation) in version order: a key's last operation wins."""
    last: dict[Any, str] = {}
    for key, op in changes:
        last[key] = op
    return [k for k, op in last.items() if op != "D"], [k for k, op in last.items() if op == "D"]


def pairs(bounds: list[Any]) -> list[tuple[Any, Any]]:
    """Tile starts -> half-open ranges [start_i, start_i+1), the first open below, the last above."""
    import itertools

    return list(itertools.pairwise([None, *bounds[1:], None])) if bounds else []
