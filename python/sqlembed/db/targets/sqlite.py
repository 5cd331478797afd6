"""SQLite (tests, small deployments): the state table lives beside the data; the content hash is a
function registered on every connection, so pending rows are decided by the database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from sqlembed.db.targets.base import EmbeddingId, SqlTarget, TableInfo, pairs
from sqlembed.db.targets.spec import Dialect, PendingRow, WriteRow, render_predicate
from sqlembed.db.targets.vectors import vector_json
from sqlembed.errors import InvalidInput

STATE = "sqlembed_embedding_state"
HASH_FN = "sqlembed_text_hash"


def _text_hash(text: Any) -> bytes | None:
    if text is None:
        return None
    return hashlib.sha256(str(text).encode("utf-16-le")).digest()


class SqliteTarget(SqlTarget):
    dialect: ClassVar[Dialect] = "sqlite"

    def _create_engine(self, url: str) -> Any:
        from sqlalchemy import create_engine, event

        # Several executor tasks write one file: wait a little for the lock; longer waits are
        # the bounded retries' (SQLEMBED_DB_RETRY_S).
        engine = create_engine(url, connect_args={"timeout": 5})

        def register(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.create_function(HASH_FN, 1, _text_hash, deterministic=True)

        event.listen(engine, "connect", register)
        return engine

    # --- driver

    def _check(self, expect_database: str | None) -> TableInfo:
        schema, name = self.spec.schema_and_name
        with self.engine.begin() as conn:
            pragma = f"PRAGMA {self.quote(schema)}.table_info({self.quote(name)})" if schema \
                else f"PRAGMA table_info({self.quote(name)})"
            cols = {r[1]: str(r[2] or "") for r in conn.exec_driver_sql(pragma)}
            if not cols:
                raise InvalidInput(f"table {self.spec.table!r} not found")
            lower = {c.lower(): c for c in cols}

            def column(requested: str, required: bool = True) -> str:
                real = lower.get(requested.lower())
                if real is None and required:
                    raise InvalidInput(f"column {requested!r} not found in {self.spec.table!r}")
                return real or requested

            key, text = column(self.spec.key), column(self.spec.text)
            vector = column(self.spec.vector, required=not self.spec.target_table)
            predicate = None
            if self.spec.where:
                predicate = render_predicate(self.spec.where, self.dialect, "t", set(cols))
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {STATE} (source_table TEXT NOT NULL, row_key TEXT NOT NULL, "
                "content_hash BLOB NOT NULL, model_id TEXT NOT NULL, variant TEXT NOT NULL DEFAULT '', "
                "embedded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (source_table, row_key))")
            have = {r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({STATE})")}
            if "variant" not in have:  # a state table from sqlembed 0.1
                conn.exec_driver_sql(f"ALTER TABLE {STATE} ADD COLUMN variant TEXT NOT NULL DEFAULT ''")
            tschema, tname = None, None
            if self.spec.target_table:
                tschema, _, tname = self.spec.target_table.rpartition(".")
                tschema = tschema or schema
                conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {self.qualified(tschema, tname)} "
                                     f"({self.quote(key)} PRIMARY KEY, {self.quote(vector)} TEXT)")
        return TableInfo(schema=schema, name=name, key=key, text=text, vector=vector, key_type=cols[key],
                         key_collation=None, columns=frozenset(cols), state_source=name, target_schema=tschema,
                         target_name=tname, predicate=predicate)

    def _prepare(self, info: TableInfo, eid: EmbeddingId) -> TableInfo:
        return info  # SQLite columns have no declared vector size; the target table exists since check()

    def _from(self, info: TableInfo) -> str:
        return f"{self.qualified(info.schema, info.name)} AS t"

    def _slice_bounds(self, info: TableInfo, slices: int) -> tuple[int, list[tuple[Any, Any]]]:
        k = self.quote(info.key)
        where = f" WHERE {info.predicate}" if info.predicate else ""
        sql = (f"SELECT b, MIN(k), COUNT(*) FROM (SELECT t.{k} AS k, NTILE(:n) OVER (ORDER BY t.{k}) AS b "  # nosec B608
               f"FROM {self._from(info)}{where}) GROUP BY b ORDER BY b")
        from sqlalchemy import text as sql_text

        with self.engine.connect() as conn:
            tiles = conn.execute(sql_text(sql), {"n": max(1, slices)}).fetchall()
        starts: list[Any] = []
        for _, start, _ in tiles:
            if not starts or start != starts[-1]:
                starts.append(start)
        return sum(int(n) for _, _, n in tiles), pairs(starts)

    # --- executor tasks

    def pending_pages(self, info: TableInfo, lo: Any, hi: Any, eid: EmbeddingId,
                      page_rows: int) -> Iterator[list[PendingRow]]:
        from sqlalchemy import text as sql_text

        q = self.quote
        k, txt = q(info.key), q(info.text)
        if info.target_name:
            join = (f" LEFT JOIN {self.qualified(info.target_schema, info.target_name)} AS tt "
                    f"ON tt.{k} = t.{k}")
            vec = f"tt.{q(info.vector)}"
        else:
            join, vec = "", f"t.{q(info.vector)}"
        params: dict[str, Any] = {"src": info.state_source, "mid": eid.model_id, "var": eid.variant,
                                  "page": page_rows}
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
            if info.predicate:
                conds.append(f"({info.predicate})")
            where = " AND ".join(conds) or "1 = 1"
            sql = (f"SELECT k, txt, h FROM (SELECT t.{k} AS k, t.{txt} AS txt, {vec} IS NULL AS missing, "  # nosec B608
                   f"CASE WHEN t.{txt} IS NULL OR t.{txt} = '' THEN NULL ELSE {HASH_FN}(t.{txt}) END AS h, "
                   f"s.content_hash AS sh, s.model_id AS smid, s.variant AS svar FROM {self._from(info)}{join} "
                   f"LEFT JOIN {STATE} AS s ON s.source_table = :src AND s.row_key = CAST(t.{k} AS TEXT) "
                   f"WHERE {where}) WHERE h IS NULL OR missing OR sh IS NULL OR sh <> h OR smid <> :mid "
                   f"OR svar <> :var ORDER BY k LIMIT :page")

            def page(sql: str = sql) -> list[PendingRow]:
                with self.engine.connect() as conn:
                    return [PendingRow(key, text if h is not None else None, h)
                            for key, text, h in conn.execute(sql_text(sql), params)]

            rows = self.retrying("reading pending rows", page)
            if rows:
                yield rows
            if len(rows) < page_rows:
                return
            after, first = rows[-1].key, False

    def write(self, info: TableInfo, rows: Sequence[WriteRow], eid: EmbeddingId) -> int:
        if not rows:
            return 0
        return self.retrying(f"writing {len(rows)} vectors", lambda: self._write(info, rows, eid))

    def _write(self, info: TableInfo, rows: Sequence[WriteRow], eid: EmbeddingId) -> int:
        q = self.quote
        k, v = q(info.key), q(info.vector)
        values = [(r.key, vector_json(r.vector, eid.vector_type)) for r in rows]
        with self.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            if info.target_name:
                target = self.qualified(info.target_schema, info.target_name)
                cur.executemany(f"INSERT INTO {target} ({k}, {v}) VALUES (?, ?) "  # nosec B608
                                f"ON CONFLICT({k}) DO UPDATE SET {v} = excluded.{v}", values)
            else:
                cur.executemany(f"UPDATE {self.qualified(info.schema, info.name)} SET {v} = ? "  # nosec B608
                                f"WHERE {k} = ?", [(vec, key) for key, vec in values])
            cur.executemany(
                f"INSERT INTO {STATE} (source_table, row_key, content_hash, model_id, variant) "  # nosec B608
                "VALUES (?, CAST(? AS TEXT), ?, ?, ?) ON CONFLICT(source_table, row_key) DO UPDATE SET "
                "content_hash = excluded.content_hash, model_id = excluded.model_id, variant = excluded.variant, "
                "embedded_at = CURRENT_TIMESTAMP",
                [(info.state_source, r.key, r.hash, eid.model_id, eid.variant) for r in rows])
        return len(rows)
