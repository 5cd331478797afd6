"""SQLite (tests, small deployments): the state table lives beside the data; the content hash is a
function registered on every connection, so pending rows are decided by the database; changes are
recorded by triggers into a queue table (the SQLite stand-in for SQL Server's change tracking)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

from sqlembed.db.targets.base import EmbeddingId, SqlTarget, TableInfo, collapse
from sqlembed.db.targets.spec import ChangeSet, ChunkRow, Dialect, WriteRow, render_predicate
from sqlembed.db.targets.vectors import vector_json
from sqlembed.errors import InvalidInput

log = logging.getLogger(__name__)

STATE = "sqlembed_embedding_state"
CHANGES = "sqlembed_changes"
SYNC = "sqlembed_sync_state"
HASH_FN = "sqlembed_text_hash"
_CHUNK_COLUMNS = {"chunk_no", "chunk_offset", "chunk_length"}


def _state_ddl(table: str) -> str:
    """One state row per (source table, destination, key): where the vector is written is part of the
    key (TableInfo.destination), so one table embedded into two places keeps one state per place."""
    return (f"CREATE TABLE IF NOT EXISTS {table} (source_table TEXT NOT NULL, destination TEXT NOT NULL, "
            "row_key TEXT NOT NULL, content_hash BLOB NOT NULL, model_id TEXT NOT NULL, "
            "variant TEXT NOT NULL DEFAULT '', embedded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, "
            "PRIMARY KEY (source_table, destination, row_key))")


def _text_hash(text: Any) -> bytes | None:
    if text is None:
        return None
    return hashlib.sha256(str(text).encode("utf-16-le")).digest()


class SqliteTarget(SqlTarget):
    dialect: ClassVar[Dialect] = "sqlite"
    text_encoding: ClassVar[str] = "utf-8"

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

    def _columns(self, conn: Any, schema: str | None, name: str) -> dict[str, tuple[str, bool]]:
        pragma = (f"PRAGMA {self.quote(schema)}.table_info({self.quote(name)})" if schema
                  else f"PRAGMA table_info({self.quote(name)})")
        return {r[1]: (str(r[2] or ""), bool(r[5])) for r in conn.exec_driver_sql(pragma)}

    def _check(self, expect_database: str | None) -> TableInfo:
        schema, name = self.spec.schema_and_name
        with self.engine.begin() as conn:
            cols = self._columns(conn, schema, name)
            if not cols:
                raise InvalidInput(f"table {self.spec.table!r} not found")
            lower = {c.lower(): c for c in cols}

            def column(requested: str, required: bool = True) -> str:
                real = lower.get(requested.lower())
                if real is None and required:
                    raise InvalidInput(f"column {requested!r} not found in {self.spec.table!r}")
                return real or requested

            key, text = column(self.spec.key), column(self.spec.text)
            vector = column(self.spec.vector, required=not (self.spec.target_table or self.spec.chunk_table))
            predicate = render_predicate(self.spec.where, self.dialect, "t", set(cols)) if self.spec.where else None
            conn.exec_driver_sql(_state_ddl(STATE))
            have = {r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({STATE})")}
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {SYNC} (source_table TEXT NOT NULL, target TEXT NOT "
                                 "NULL, variant TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (source_table, "
                                 "target))")
        tschema = tname = cschema = cname = None
        target_exists = True
        if self.spec.target_table:
            tschema, _, tname = self.spec.target_table.rpartition(".")
            tschema = tschema or schema
            with self.engine.connect() as conn:
                target_exists = bool(self._columns(conn, tschema, tname))
        if self.spec.chunk_table:
            cschema, _, cname = self.spec.chunk_table.rpartition(".")
            cschema = cschema or schema
        info = TableInfo(schema=schema, name=name, key=key, text=text, vector=vector, key_type=cols[key][0],
                         key_collation=None, columns=frozenset(cols), state_source=name, target_schema=tschema,
                         target_name=tname, predicate=predicate, chunk_schema=cschema, chunk_name=cname,
                         primary_key=tuple(c for c, (_, pk) in cols.items() if pk), target_exists=target_exists)
        if "destination" not in have:
            self._migrate_state(info)
        return info

    def _migrate_state(self, info: TableInfo) -> None:
        """A state table from before destinations (keyed by source table and key; chunk jobs as
        ``name>chunk table``) becomes today's, once, in one transaction (DDL included).

        Chunk-job rows keep their state where the destination is certain: this job's own chunk table,
        or a chunk table whose one vector column the table's shape names. Every other row could
        describe any of the table's destinations (trusting it could keep a stale vector forever), so
        it is dropped and its row embedded once more.
        """
        raw = self.engine.raw_connection()
        try:
            db = raw.driver_connection
            level = db.isolation_level
            db.isolation_level = None  # explicit BEGIN ... COMMIT: sqlite3 would commit DDL on its own
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    moved, total = self._move_state_rows(db, info)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            finally:
                db.isolation_level = level
        finally:
            raw.close()
        if total > moved:
            log.warning("%s: upgraded to one state per destination; %d of %d state rows could not be attributed "
                        "to one destination and were dropped (those rows are embedded once more)",
                        STATE, total - moved, total)

    def _move_state_rows(self, db: Any, info: TableInfo) -> tuple[int, int]:
        """(rows kept, rows there were); nothing to do where another job migrated the table first."""
        have = {r[1] for r in db.execute(f"PRAGMA table_info({STATE})")}
        if "destination" in have:
            return 0, 0
        new = f"{STATE}_v3"
        db.execute(f"DROP TABLE IF EXISTS {new}")
        db.execute(_state_ddl(new))
        variant = "variant" if "variant" in have else "''"  # sqlembed 0.1 had none
        total = int(db.execute(f"SELECT COUNT(*) FROM {STATE}").fetchone()[0])
        moved = 0
        for (source,) in db.execute(f"SELECT DISTINCT source_table FROM {STATE} "
                                    "WHERE instr(source_table, '>') > 0").fetchall():
            name, _, chunks = str(source).partition(">")
            destination = self._old_chunk_destination(db, info, name, chunks)
            if destination is None:
                continue
            moved += db.execute(
                f"INSERT INTO {new} (source_table, destination, row_key, content_hash, model_id, variant, "
                f"embedded_at) SELECT ?, ?, row_key, content_hash, model_id, {variant}, embedded_at FROM {STATE} "
                "WHERE source_table = ?", (name, destination, source)).rowcount
        db.execute(f"DROP TABLE {STATE}")
        db.execute(f"ALTER TABLE {new} RENAME TO {STATE}")
        return moved, total

    def _old_chunk_destination(self, db: Any, info: TableInfo, name: str, chunks: str) -> str | None:
        if info.chunk_name is not None and (name, chunks) == (info.name, info.chunk_name):
            return info.destination  # this job's own chunk table
        cols = db.execute(f"PRAGMA table_info({self.quote(chunks)})").fetchall()
        names = {str(c[1]) for c in cols}
        vectors = [str(c[1]) for c in cols if not c[5] and c[1] not in _CHUNK_COLUMNS]
        if not names >= _CHUNK_COLUMNS or len(vectors) != 1:
            return None  # gone, or not the shape a job creates: the vector column is not certain
        return f"[].[{chunks}].[{vectors[0]}]"

    def _prepare(self, info: TableInfo, eid: EmbeddingId) -> TableInfo:
        k, v = self.quote(info.key), self.quote(info.vector)
        with self.engine.begin() as conn:
            if info.target_name:
                target = self.qualified(info.target_schema, info.target_name)
                conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {target} ({k} PRIMARY KEY, {v} TEXT)")
            if info.chunk_name:
                conn.exec_driver_sql(
                    f"CREATE TABLE IF NOT EXISTS {self.qualified(info.chunk_schema, info.chunk_name)} ({k} NOT NULL, "
                    f"chunk_no INTEGER NOT NULL, chunk_offset INTEGER NOT NULL, chunk_length INTEGER NOT NULL, "
                    f"{v} TEXT, PRIMARY KEY ({k}, chunk_no))")
        return replace(info, target_exists=True)

    def _from(self, info: TableInfo) -> str:
        return f"{self.qualified(info.schema, info.name)} AS t"

    def _tiles_sql(self, info: TableInfo) -> str:
        k = self.quote(info.key)
        where = f" WHERE {info.predicate}" if info.predicate else ""
        return (f"SELECT b, MIN(k), COUNT(*) FROM (SELECT t.{k} AS k, NTILE(:n) OVER (ORDER BY t.{k}) AS b "
                f"FROM {self._from(info)}{where}) GROUP BY b ORDER BY b")

    # --- executor tasks

    def _pending_sql(self, info: TableInfo, conds: list[str], count: bool = False) -> str:
        """The one pending test: no vector (not for chunked jobs: the state says), another text, model
        or embedding; NULL or empty texts come back with no text (failed rows). ``count``: (rows,
        UTF-8 bytes of their texts) instead of the rows."""
        q = self.quote
        k, txt = q(info.key), q(info.text)
        join = ""
        if info.target_name and not info.target_exists:
            missing = "1"  # a dry run before the job creates its target: no row has a vector there
        elif info.target_name:
            join = f" LEFT JOIN {self.qualified(info.target_schema, info.target_name)} AS tt ON tt.{k} = t.{k}"
            missing = f"tt.{q(info.vector)} IS NULL"
        elif info.chunked:
            missing = "0"
        else:
            missing = f"t.{q(info.vector)} IS NULL"
        if info.predicate:
            conds = [*conds, f"({info.predicate})"]
        where = " AND ".join(conds) or "1 = 1"
        select = ("COUNT(*), COALESCE(SUM(LENGTH(CAST(txt AS BLOB))), 0)" if count else "k, txt, h")
        return (f"SELECT {select} FROM (SELECT t.{k} AS k, t.{txt} AS txt, {missing} AS missing, "
                f"CASE WHEN t.{txt} IS NULL OR t.{txt} = '' THEN NULL ELSE {HASH_FN}(t.{txt}) END AS h, "
                f"s.content_hash AS sh, s.model_id AS smid, s.variant AS svar FROM {self._from(info)}{join} "
                f"LEFT JOIN {STATE} AS s ON s.source_table = :src AND s.destination = :dst "
                f"AND s.row_key = CAST(t.{k} AS TEXT) "
                f"WHERE {where}) WHERE h IS NULL OR missing OR sh IS NULL OR sh <> h OR smid <> :mid "
                f"OR svar <> :var" + ("" if count else " ORDER BY k"))

    def _page_sql(self, info: TableInfo, conds: list[str]) -> str:
        return self._pending_sql(info, conds) + " LIMIT :page"

    def _keys_sql(self, info: TableInfo) -> str:
        return self._pending_sql(info, [f"t.{self.quote(info.key)} IN (SELECT value FROM json_each(:keys))"])

    def _count_sql(self, info: TableInfo) -> str:
        return self._pending_sql(info, [], count=True)

    def _state_rows(self, info: TableInfo, rows: Sequence[WriteRow] | Sequence[ChunkRow], eid: EmbeddingId) -> Any:
        return [(info.state_source, info.destination, r.key, r.hash, eid.model_id, eid.variant) for r in rows]

    _UPSERT_STATE = (f"INSERT INTO {STATE} (source_table, destination, row_key, content_hash, model_id, variant) "
                     "VALUES (?, ?, CAST(? AS TEXT), ?, ?, ?) ON CONFLICT(source_table, destination, row_key) "
                     "DO UPDATE SET content_hash = excluded.content_hash, model_id = excluded.model_id, "
                     "variant = excluded.variant, embedded_at = CURRENT_TIMESTAMP")

    def _present(self, cur: Any, info: TableInfo, rows: Sequence[WriteRow] | Sequence[ChunkRow]) -> list[Any]:
        """The rows whose key is still in the source table, in one query inside the write's transaction:
        a row deleted since it was read gets no vector, no target or chunk row, and no state."""
        import orjson

        sql = (f"SELECT t.{self.quote(info.key)} FROM {self._from(info)} "
               f"WHERE t.{self.quote(info.key)} IN (SELECT value FROM json_each(?))")
        keys = {r[0] for r in cur.execute(sql, (orjson.dumps([r.key for r in rows], default=str).decode(),))}
        return [r for r in rows if r.key in keys]

    def _write(self, info: TableInfo, rows: Sequence[WriteRow], eid: EmbeddingId) -> int:
        """Each present row's vector, then the state of exactly those rows."""
        q = self.quote
        k, v = q(info.key), q(info.vector)
        with self.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            present = self._present(cur, info, rows)
            values = [(r.key, vector_json(r.vector, eid.vector_type)) for r in present]
            if info.target_name:
                target = self.qualified(info.target_schema, info.target_name)
                cur.executemany(f"INSERT INTO {target} ({k}, {v}) VALUES (?, ?) "
                                f"ON CONFLICT({k}) DO UPDATE SET {v} = excluded.{v}", values)
            else:
                cur.executemany(f"UPDATE {self.qualified(info.schema, info.name)} SET {v} = ? "
                                f"WHERE {k} = ?", [(vec, key) for key, vec in values])
            cur.executemany(self._UPSERT_STATE, self._state_rows(info, present, eid))
        return len(present)

    def _write_chunks(self, info: TableInfo, rows: Sequence[ChunkRow], eid: EmbeddingId) -> int:
        k, v = self.quote(info.key), self.quote(info.vector)
        chunks = self.qualified(info.chunk_schema, info.chunk_name or "")
        with self.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            cur.executemany(f"DELETE FROM {chunks} WHERE {k} = ?", [(r.key,) for r in rows])
            # A parent deleted since it was read loses its old chunks and gets no new ones, nor state.
            present = self._present(cur, info, rows)
            cur.executemany(
                f"INSERT INTO {chunks} ({k}, chunk_no, chunk_offset, chunk_length, {v}) VALUES (?, ?, ?, ?, ?)",
                [(r.key, c.no + 1, c.offset + 1, c.length, vector_json(c.vector, eid.vector_type))
                 for r in present for c in r.chunks])
            cur.executemany(self._UPSERT_STATE, self._state_rows(info, present, eid))
        return len(present)

    # --- changes

    def tracking(self, info: TableInfo) -> bool:
        with self.engine.connect() as conn:
            found = conn.exec_driver_sql("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                                         (self._trigger(info, "d"),)).scalar()
        return bool(found == 1)

    def _trigger(self, info: TableInfo, op: str) -> str:
        return f"sqlembed_track_{info.name}_{op}"

    def enable_tracking(self, info: TableInfo) -> None:
        """A change queue fed by triggers: every insert, text update and delete records the key."""
        t, k, txt = self.qualified(info.schema, info.name), self.quote(info.key), self.quote(info.text)
        src = info.name.replace("'", "''")
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {CHANGES} (version INTEGER PRIMARY KEY AUTOINCREMENT, "
                                 "source_table TEXT NOT NULL, k NOT NULL, op TEXT NOT NULL)")
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {CHANGES}_source ON {CHANGES} (source_table, version)")
            def record(row: str, op: str) -> str:
                return f"INSERT INTO {CHANGES} (source_table, k, op) VALUES ('{src}', {row}.{k}, '{op}');"

            # A changed key is the old key deleted and the new one inserted.
            triggers = (("i", "INSERT", record("NEW", "I")), ("u", f"UPDATE OF {txt}", record("NEW", "U")),
                        ("k", f"UPDATE OF {k}", record("OLD", "D") + " " + record("NEW", "I")),
                        ("d", "DELETE", record("OLD", "D")))
            for name, event, body in triggers:
                conn.exec_driver_sql(f"CREATE TRIGGER IF NOT EXISTS {self.quote(self._trigger(info, name))} "
                                     f"AFTER {event} ON {t} BEGIN {body} END")

    def current_version(self, info: TableInfo) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT COALESCE(MAX(version), 0) FROM {CHANGES}").scalar() or 0)

    def changes(self, info: TableInfo, since: int | None) -> ChangeSet | None:
        if since is None:
            return None
        with self.engine.connect() as conn:
            oldest = conn.exec_driver_sql(f"SELECT MIN(version) FROM {CHANGES} WHERE source_table = ?",
                                          (info.name,)).scalar()
            current = int(conn.exec_driver_sql(f"SELECT COALESCE(MAX(version), 0) FROM {CHANGES}").scalar() or 0)
            if oldest is not None and int(oldest) > since + 1 and since < self._cleaned(conn, info):
                return None
            rows = conn.exec_driver_sql(f"SELECT k, op FROM {CHANGES} WHERE source_table = ? AND version > ? "
                                        "AND version <= ? ORDER BY version", (info.name, since, current)).fetchall()
        upserts, deletes = collapse([(k, op) for k, op in rows])
        return ChangeSet(current, upserts, deletes)

    def _cleaned(self, conn: Any, info: TableInfo) -> int:
        """Versions up to this were deleted from the queue (after every target synced past them)."""
        return int(conn.exec_driver_sql(f"SELECT COALESCE(MIN(version), 0) FROM {SYNC} WHERE source_table = ?",
                                        (info.name,)).scalar() or 0)

    def sync_version(self, info: TableInfo, eid: EmbeddingId) -> int | None:
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql(f"SELECT version, variant FROM {SYNC} WHERE source_table = ? AND target = ?",
                                       (info.name, info.destination)).fetchone()
        return int(row[0]) if row is not None and row[1] == eid.variant else None

    def save_sync_version(self, info: TableInfo, eid: EmbeddingId, version: int) -> None:
        def save() -> None:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(
                    f"INSERT INTO {SYNC} (source_table, target, variant, version) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(source_table, target) DO UPDATE SET variant = excluded.variant, "
                    "version = excluded.version", (info.name, info.destination, eid.variant, version))
                # Queue entries every target of this table has synced past are no longer needed.
                conn.exec_driver_sql(f"DELETE FROM {CHANGES} WHERE source_table = ? AND version <= "
                                     f"(SELECT MIN(version) FROM {SYNC} WHERE source_table = ?)",
                                     (info.name, info.name))

        self.retrying("recording the sync version", save)

    def text_units(self, text: str, offset: int, length: int) -> tuple[int, int]:
        return offset, length  # substr() counts characters

    def delete_rows(self, info: TableInfo, keys: Sequence[Any]) -> int:
        if not keys:
            return 0
        k = self.quote(info.key)

        def delete() -> int:
            with self.engine.begin() as conn:
                cur = conn.connection.driver_connection.cursor()
                if info.chunked:
                    cur.executemany(f"DELETE FROM {self.qualified(info.chunk_schema, info.chunk_name or '')} "
                                    f"WHERE {k} = ?", [(key,) for key in keys])
                if info.target_name:
                    cur.executemany(f"DELETE FROM {self.qualified(info.target_schema, info.target_name)} "
                                    f"WHERE {k} = ?", [(key,) for key in keys])
                cur.executemany(f"DELETE FROM {STATE} WHERE source_table = ? AND destination = ? "
                                "AND row_key = CAST(? AS TEXT)", [(info.state_source, info.destination, key)
                                                                   for key in keys])
            return len(keys)

        return self.retrying(f"deleting {len(keys)} rows' vectors", delete)

    def deleted_keys(self, info: TableInfo) -> list[Any]:
        # t.k = s.row_key, not CAST(t.k AS TEXT): SQLite gives the text the key column's affinity,
        # so the key's index answers each probe (a cast on the key side scans the table per row).
        k = self.quote(info.key)
        sql = (f"SELECT s.row_key FROM {STATE} AS s WHERE s.source_table = ? AND s.destination = ? AND NOT EXISTS "
               f"(SELECT 1 FROM {self._from(info)} WHERE t.{k} = s.row_key)")
        with self.engine.connect() as conn:
            texts = [r[0] for r in conn.exec_driver_sql(sql, (info.state_source, info.destination))]
        # Keys as the table stores them (the state keeps their text): integers stay integers.
        return [int(t) if t.lstrip("-").isdigit() and info.key_type.upper().startswith("INT") else t for t in texts]
