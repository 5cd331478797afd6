"""Reading pending rows and writing vectors for bulk jobs, through SQLAlchemy (SQLite or SQL Server).

Identifiers are validated against the database's own catalog and quoted by the dialect. The
content hash is SHA-256 of the text as UTF-16LE, the same bytes T-SQL's
HASHBYTES('SHA2_256', CAST(text AS nvarchar(max))) hashes, so embed_rows and bulk jobs share
one state table and never redo each other's work.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlembed.errors import DatabaseUnavailable, InvalidInput

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # fullmatch: "$" would accept a trailing newline
SQLITE_STATE = "sqlembed_embedding_state"


def content_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-16-le")).digest()


def _vector_json(v: Sequence[float]) -> str:
    try:
        import numpy as np
        import orjson

        # float32 shortest round-trip text: compact and exact, and fast for 384 x 20,000 values.
        return orjson.dumps(np.asarray(v, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except ImportError:
        return json.dumps([float(x) for x in v], separators=(",", ":"))


@dataclass(frozen=True)
class TableSpec:
    url: str
    table: str
    key: str
    text: str
    vector: str
    where: str | None = None
    target_table: str | None = None

    def validate_shape(self) -> None:
        parts = self.table.split(".")
        names = [*parts, self.key, self.text, self.vector, *(self.target_table.split(".") if self.target_table else [])]
        if len(parts) > 2 or not all(_IDENT.fullmatch(n) for n in names):
            raise InvalidInput("table and column names must be plain identifiers (schema.table allowed)")
        if self.where is not None and re.search(r";|--|/\*", self.where):
            raise InvalidInput("'where' may not contain ';' or comments")


@dataclass(frozen=True)
class PendingRow:
    key: Any
    text: str | None


def engine_for(url: str) -> Any:
    from sqlalchemy import create_engine

    if url.startswith("sqlite"):
        # Several executor tasks write one SQLite file: wait a little for the lock; longer waits
        # are TableAccess._retrying's (backoff, bounded by SQLEMBED_DB_RETRY_S).
        return create_engine(url, connect_args={"timeout": 5})
    return create_engine(url, fast_executemany=True) if url.startswith("mssql+pyodbc") else create_engine(url)


class TableAccess:
    """Everything a job does to one table; one instance per process (driver or executor task)."""

    def __init__(self, spec: TableSpec, retry_s: float = 60.0) -> None:
        spec.validate_shape()
        self.spec = spec
        self.retry_s = retry_s
        self.engine = engine_for(spec.url)
        self.dialect = self.engine.dialect.name
        import sqlalchemy.exc

        # Errors worth a retry: SQLAlchemy's, and the driver's own from raw cursors (writes use them).
        self._transient: tuple[type[BaseException], ...] = (sqlalchemy.exc.OperationalError,)
        dbapi = getattr(self.engine.dialect, "dbapi", None)
        if dbapi is not None and hasattr(dbapi, "OperationalError"):
            self._transient += (dbapi.OperationalError,)
        if self.dialect not in ("sqlite", "mssql"):
            raise InvalidInput(f"databases of type {self.dialect!r} are not supported (sqlite, mssql)")
        # Every identifier below is validated (TableSpec.validate_shape) and quoted by the dialect;
        # every value is a bound parameter. That is why the f-string SQL here carries `nosec B608`.
        q = self.engine.dialect.identifier_preparer.quote
        schema, _, name = spec.table.rpartition(".")
        self.schema = schema or ("dbo" if self.dialect == "mssql" else None)
        self.name = name
        self.q_table = (q(self.schema) + "." if self.schema else "") + q(name)
        self.q_key, self.q_text, self.q_vector = q(spec.key), q(spec.text), q(spec.vector)
        if spec.target_table:
            tschema, _, tname = spec.target_table.rpartition(".")
            tschema = tschema or self.schema or ""
            self.q_target = (q(tschema) + "." if tschema else "") + q(tname)
        else:
            self.q_target = self.q_table
        # The state table's source_table matches what the T-SQL procedures write.
        self.state_source = f"[{self.schema}].[{name}]" if self.dialect == "mssql" else name
        self.state_table = "sqlembed.embedding_state" if self.dialect == "mssql" else SQLITE_STATE

    def close(self) -> None:
        """Close pooled connections: a long-lived service or Python worker must not keep one per job."""
        self.engine.dispose()

    # --- setup (driver) ------------------------------------------------------------------------

    def check(self) -> None:
        from sqlalchemy import inspect

        insp = inspect(self.engine)
        tables = insp.get_table_names(schema=self.schema if self.dialect == "mssql" else None)
        if self.name not in tables:
            raise InvalidInput(f"table {self.spec.table!r} not found")
        cols = {c["name"] for c in insp.get_columns(self.name, schema=self.schema if self.dialect == "mssql" else None)}
        needed = [self.spec.key, self.spec.text] + ([] if self.spec.target_table else [self.spec.vector])
        missing = [c for c in needed if c not in cols]
        if missing:
            raise InvalidInput(f"column(s) {missing} not found in {self.spec.table!r}")
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql(
                    f"CREATE TABLE IF NOT EXISTS {SQLITE_STATE} (source_table TEXT NOT NULL, row_key TEXT NOT NULL, "
                    "content_hash BLOB NOT NULL, model_id TEXT NOT NULL, embedded_at TEXT NOT NULL "
                    "DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (source_table, row_key))")
                if self.spec.target_table:
                    conn.exec_driver_sql(
                        f"CREATE TABLE IF NOT EXISTS {self.q_target} ({self.q_key} PRIMARY KEY, {self.q_vector} TEXT)")
            elif conn.exec_driver_sql("SELECT OBJECT_ID(N'sqlembed.embedding_state', N'U')").scalar() is None:
                raise InvalidInput("sqlembed.embedding_state is missing: run `sqlembed db deploy` first")

    def _filter(self) -> str:
        return f" AND ({self.spec.where})" if self.spec.where else ""

    def slice_bounds(self, slices: int) -> tuple[int, list[tuple[Any, Any]]]:
        """(rows in scope, key ranges [lo, hi) of about equal row counts; None means unbounded)."""
        base = f"FROM {self.q_table} AS t WHERE 1 = 1{self._filter()}"
        with self.engine.connect() as conn:
            total = int(conn.exec_driver_sql(f"SELECT COUNT(*) {base}").scalar() or 0)
            if total == 0:
                return 0, []
            slices = max(1, min(slices, total))
            bounds: list[Any] = []
            for i in range(1, slices):
                offset = i * total // slices
                page = (f"OFFSET {offset} ROWS FETCH NEXT 1 ROWS ONLY" if self.dialect == "mssql"
                        else f"LIMIT 1 OFFSET {offset}")
                sql = f"SELECT t.{self.q_key} {base} ORDER BY t.{self.q_key} {page}"
                value = conn.exec_driver_sql(sql).scalar()
                if not bounds or value != bounds[-1]:
                    bounds.append(value)
        return total, list(itertools.pairwise([None, *bounds, None]))

    # --- executor side -------------------------------------------------------------------------

    def _retrying(self, what: str, fn: Callable[[], _T]) -> _T:
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
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailable(
                        f"the database stayed unavailable for {self.retry_s:g} s while {what} "
                        f"({attempt} attempts; last error: {type(exc).__name__}: {first})") from None
                log.warning("database unavailable while %s (%s: %s); retrying in %.1f s",
                            what, type(exc).__name__, first, delay)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
                if hasattr(self.engine, "dispose"):
                    self.engine.dispose()  # drop pooled connections that may be dead

    def pending(self, lo: Any, hi: Any, model_id: str) -> list[PendingRow]:
        """Rows of [lo, hi) whose vector is missing or whose text or model changed."""
        return self._retrying("reading pending rows", lambda: self._pending(lo, hi, model_id))

    def _pending(self, lo: Any, hi: Any, model_id: str) -> list[PendingRow]:
        vec_src = "tt" if self.spec.target_table else "t"
        join_target = (f" LEFT JOIN {self.q_target} AS tt ON tt.{self.q_key} = t.{self.q_key}"
                       if self.spec.target_table else "")
        key_type = "nvarchar(450)" if self.dialect == "mssql" else "TEXT"
        key_text = f"CAST(t.{self.q_key} AS {key_type})"
        conds, params = [], {"src": self.state_source}
        if lo is not None:
            conds.append(f"t.{self.q_key} >= :lo")
            params["lo"] = lo
        if hi is not None:
            conds.append(f"t.{self.q_key} < :hi")
            params["hi"] = hi
        where = " AND ".join(conds) or "1 = 1"
        missing = f"CASE WHEN {vec_src}.{self.q_vector} IS NULL THEN 1 ELSE 0 END"
        sql = (f"SELECT t.{self.q_key}, t.{self.q_text}, {missing}, s.content_hash, s.model_id "  # nosec B608
               f"FROM {self.q_table} AS t{join_target} "
               f"LEFT JOIN {self.state_table} AS s ON s.source_table = :src AND s.row_key = {key_text} "
               f"WHERE {where}{self._filter()} ORDER BY t.{self.q_key}")
        from sqlalchemy import text as sql_text

        out: list[PendingRow] = []
        with self.engine.connect() as conn:
            for key, txt, missing, h, mid in conn.execute(sql_text(sql), params):
                if txt is None or txt == "":
                    out.append(PendingRow(key, None))
                elif missing or h is None or bytes(h) != content_hash(txt) or mid != model_id:
                    out.append(PendingRow(key, txt))
        return out

    def write(self, rows: Sequence[tuple[Any, str, Sequence[float]]], model_id: str, dimensions: int) -> int:
        """Vectors and state rows for (key, text, vector) in one transaction; idempotent."""
        if not rows:
            return 0
        return self._retrying(f"writing {len(rows)} vectors", lambda: self._write(rows, model_id, dimensions))

    def _write(self, rows: Sequence[tuple[Any, str, Sequence[float]]], model_id: str, dimensions: int) -> int:
        payload = [(k, _vector_json(v), content_hash(t)) for k, t, v in rows]
        with self.engine.begin() as conn:
            raw = conn.connection.driver_connection
            cur = raw.cursor()
            if self.dialect == "sqlite":
                if self.spec.target_table:
                    cur.executemany(f"INSERT INTO {self.q_target} ({self.q_key}, {self.q_vector}) VALUES (?, ?) "  # nosec B608
                                    f"ON CONFLICT({self.q_key}) DO UPDATE SET "
                                    f"{self.q_vector} = excluded.{self.q_vector}",
                                    [(k, v) for k, v, _ in payload])
                else:
                    cur.executemany(f"UPDATE {self.q_table} SET {self.q_vector} = ? WHERE {self.q_key} = ?",  # nosec B608
                                    [(v, k) for k, v, _ in payload])
                cur.executemany(
                    f"INSERT INTO {SQLITE_STATE} (source_table, row_key, content_hash, model_id) VALUES (?, ?, ?, ?) "  # nosec B608
                    "ON CONFLICT(source_table, row_key) DO UPDATE SET content_hash = excluded.content_hash, "
                    "model_id = excluded.model_id, embedded_at = CURRENT_TIMESTAMP",
                    [(self.state_source, str(k), h, model_id) for k, _, h in payload])
            else:
                self._write_mssql(cur, payload, model_id, dimensions)
        return len(rows)

    def _write_mssql(self, cur: Any, payload: list[tuple[Any, str, bytes]], model_id: str, dimensions: int) -> None:
        # Staging + one set-based statement each: vectors travel as JSON text and are CAST to VECTOR(n)
        # on the server (ODBC's native vector transport is off by default, contract D2).
        cur.execute("CREATE TABLE #sqlembed_stage (k nvarchar(450) COLLATE DATABASE_DEFAULT PRIMARY KEY, "
                    "v nvarchar(max) NOT NULL, h binary(32) NOT NULL)")
        cur.fast_executemany = True
        cur.executemany("INSERT #sqlembed_stage (k, v, h) VALUES (?, ?, ?)", [(str(k), v, h) for k, v, h in payload])
        vec = f"CAST(s.v AS VECTOR({int(dimensions)}))"
        if self.spec.target_table:
            cur.execute(f"MERGE {self.q_target} AS t USING #sqlembed_stage AS s ON t.{self.q_key} = s.k "  # nosec B608
                        f"WHEN MATCHED THEN UPDATE SET {self.q_vector} = {vec} "
                        f"WHEN NOT MATCHED THEN INSERT ({self.q_key}, {self.q_vector}) VALUES (s.k, {vec});")
        else:
            cur.execute(f"UPDATE t SET t.{self.q_vector} = {vec} FROM {self.q_table} AS t "  # nosec B608
                        f"JOIN #sqlembed_stage AS s ON t.{self.q_key} = s.k")
        cur.execute("MERGE sqlembed.embedding_state AS st USING #sqlembed_stage AS s "
                    "ON st.source_table = ? AND st.row_key = s.k "
                    "WHEN MATCHED THEN UPDATE SET content_hash = s.h, model_id = ?, embedded_at = SYSUTCDATETIME() "
                    "WHEN NOT MATCHED THEN INSERT (source_table, row_key, content_hash, model_id) "
                    "VALUES (?, s.k, s.h, ?);", self.state_source, model_id, self.state_source, model_id)
        cur.execute("DROP TABLE #sqlembed_stage")
