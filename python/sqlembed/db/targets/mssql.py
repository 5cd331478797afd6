"""SQL Server: names resolved in the catalog, pending rows decided by HASHBYTES on the server, each
chunk written in one round trip (one JSON document parameter, OPENJSON on the server, a set-based
UPDATE or MERGE and the state MERGE in one transaction), and living tables synced from Change
Tracking (CHANGETABLE) so a re-sync reads only the rows that changed.

The state table (migration 050) is keyed by SHA-256 of (source table, destination, key text), the
destination being where the vector is written (``TableInfo.destination``: one table embedded into
two places keeps one state per place); both hashes are computed by SQL Server, exactly as
``sqlembed.embed_rows`` computes them, so the two paths share one state and never redo each other's
work.

Keys travel as JSON. Character keys are read from it as nvarchar and converted to the column's type
in the column's collation (``CAST(j.k COLLATE <collation> AS varchar(n))``): read as varchar they
would go through the database's code page first, and a key outside it (Cyrillic in a Latin1
database) would become '?', match no row and stay pending forever.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import orjson

from sqlembed.db.targets.base import EmbeddingId, SqlTarget, TableInfo, collapse
from sqlembed.db.targets.spec import ChangeSet, ChunkRow, Dialect, VectorType, WriteRow, render_predicate
from sqlembed.db.targets.vectors import as_type
from sqlembed.errors import InvalidInput

KEY_TYPES = {"int", "bigint", "smallint", "tinyint", "uniqueidentifier", "nvarchar", "varchar", "nchar", "char"}
TEXT_TYPES = {"nvarchar", "varchar", "nchar", "char", "ntext", "text"}
_COLLATION = re.compile(r"[A-Za-z0-9_]{1,128}")
STATE = "sqlembed.embedding_state"
SYNC = "sqlembed.sync_state"
# The state key exactly as migration 050's computed column and sqlembed.embed_rows build it: hashed
# over nvarchar(max), or the concatenation would be cut at 4,000 characters.
STATE_KEY = ("HASHBYTES('SHA2_256', CAST(:src AS nvarchar(max)) + NCHAR(0) + CAST(:dst AS nvarchar(800)) + NCHAR(0) "
             "+ CAST({col} AS nvarchar(4000)))")
_COLUMNS = ("SELECT c.name, TYPE_NAME(c.user_type_id), c.max_length, c.collation_name, c.vector_dimensions, "
            "c.vector_base_type_desc FROM sys.columns AS c WHERE c.object_id = OBJECT_ID(:t)")


def _declared(type_name: str, max_length: int) -> str:
    if type_name in ("nvarchar", "nchar"):
        return f"{type_name}({max_length // 2})"
    if type_name in ("varchar", "char"):
        return f"{type_name}({max_length})"
    return type_name


def utf16_offset(text: str, offset: int) -> int:
    """A code-point offset as UTF-16 code units: SUBSTRING on nvarchar counts those (non-SC collations)."""
    return offset + sum(1 for ch in text[:offset] if ord(ch) > 0xFFFF)


class MssqlTarget(SqlTarget):
    dialect: ClassVar[Dialect] = "tsql"
    text_encoding: ClassVar[str] = "utf-16-le"

    def _create_engine(self, url: str) -> Any:
        from sqlembed.db.connect import sqlalchemy_engine

        return sqlalchemy_engine(url)

    # --- driver

    def _check(self, expect_database: str | None) -> TableInfo:
        from sqlalchemy import text as sql_text

        with self.engine.connect() as conn:
            row = conn.execute(sql_text(
                "SELECT OBJECT_SCHEMA_NAME(OBJECT_ID(:t)), OBJECT_NAME(OBJECT_ID(:t)), DB_NAME(), "
                "OBJECT_ID(:t), HAS_PERMS_BY_NAME(:t, 'OBJECT', 'SELECT'), "
                "CASE WHEN COL_LENGTH(N'sqlembed.embedding_state', N'destination') IS NULL THEN 0 ELSE 1 END"),
                {"t": self.spec.table}).one()
            schema, name, database, oid, can_read, state_ok = row
            if expect_database is not None and database != expect_database:
                raise InvalidInput(f"the database this job's 'db' name points at is {database!r}, but the job "
                                   f"was submitted for {expect_database!r}; fix SQLEMBED_DATABASES")
            if oid is None:
                raise InvalidInput(f"table {self.spec.table!r} not found (or not visible to the service's login)")
            if not can_read:
                raise InvalidInput(f"the service's login may not SELECT from [{schema}].[{name}]")
            if not state_ok:
                raise InvalidInput("sqlembed.embedding_state is missing or older than this version: "
                                   "run `sqlembed db deploy` first")
            cols = {r[0]: r for r in conn.execute(sql_text(_COLUMNS), {"t": f"{schema}.{name}"})}
            primary = tuple(r[0] for r in conn.execute(sql_text(
                "SELECT c.name FROM sys.indexes AS i JOIN sys.index_columns AS ic ON ic.object_id = i.object_id "
                "AND ic.index_id = i.index_id JOIN sys.columns AS c ON c.object_id = ic.object_id "
                "AND c.column_id = ic.column_id WHERE i.object_id = :oid AND i.is_primary_key = 1 "
                "ORDER BY ic.key_ordinal"), {"oid": oid}))
            lower = {c.lower(): c for c in cols}

            def column(requested: str) -> Any:
                real = lower.get(requested.lower())
                if real is None:
                    raise InvalidInput(f"column {requested!r} not found in [{schema}].[{name}]")
                return cols[real]

            key, text = column(self.spec.key), column(self.spec.text)
            if key[1] not in KEY_TYPES or key[2] == -1:
                raise InvalidInput(f"key column type {key[1]} is not supported (integer, uniqueidentifier or "
                                   "character keys up to 4000 characters)")
            if text[1] not in TEXT_TYPES:
                raise InvalidInput(f"text column {text[0]} is {text[1]}, not a character type")
            tschema = tname = cschema = cname = None
            vec_schema, vec_table = schema, name
            if self.spec.target_table:
                tschema, _, tname = self.spec.target_table.rpartition(".")
                tschema, tname = self._catalog_name(conn, tschema or schema, tname)
                vec_schema, vec_table = tschema, tname
            if self.spec.chunk_table:
                cschema, _, cname = self.spec.chunk_table.rpartition(".")
                cschema, cname = self._catalog_name(conn, cschema or schema, cname)
                vec_schema, vec_table = cschema, cname
            vector = self._vector_column(conn, vec_schema, vec_table, self.spec.vector)
            perm = conn.execute(sql_text("SELECT HAS_PERMS_BY_NAME(:t, 'OBJECT', 'UPDATE', :c, 'COLUMN')"),
                                {"t": f"{vec_schema}.{vec_table}", "c": vector[0] if vector else self.spec.vector}
                                ).scalar()
            if vector is not None and not self.spec.chunk_table and not perm:
                raise InvalidInput(f"the service's login may not UPDATE {vector[0]} of [{vec_schema}].[{vec_table}]")
        collation = key[3] if key[3] and _COLLATION.fullmatch(key[3]) else None
        predicate = render_predicate(self.spec.where, self.dialect, "t", set(cols)) if self.spec.where else None
        vtype: VectorType = "float16" if vector is not None and vector[5] == "float16" else "float32"
        source = f"[{schema}].[{name}]"
        return TableInfo(schema=schema, name=name, key=key[0], text=text[0],
                         vector=vector[0] if vector else self.spec.vector, key_type=_declared(key[1], key[2]),
                         key_collation=collation, columns=frozenset(cols), state_source=source,
                         vector_dims=int(vector[4]) if vector is not None and vector[4] else None, vector_type=vtype,
                         target_schema=tschema, target_name=tname, predicate=predicate, database=database,
                         chunk_schema=cschema, chunk_name=cname, primary_key=primary,
                         # _vector_column finds no column where the target table does not exist yet.
                         target_exists=not (tname and vector is None))

    @staticmethod
    def _catalog_name(conn: Any, schema: str | None, table: str) -> tuple[str | None, str]:
        """A target or chunk table's names as the catalog spells them where it exists (they are part of
        the state key: another spelling of the same table must not look like another destination)."""
        from sqlalchemy import text as sql_text

        row = conn.execute(sql_text("SELECT OBJECT_SCHEMA_NAME(OBJECT_ID(:t)), OBJECT_NAME(OBJECT_ID(:t))"),
                           {"t": f"{schema}.{table}"}).one()
        return (str(row[0]), str(row[1])) if row[1] is not None else (schema, table)

    def _vector_column(self, conn: Any, schema: str | None, table: str, column: str) -> Any:
        from sqlalchemy import text as sql_text

        rows = conn.execute(sql_text(_COLUMNS), {"t": f"{schema}.{table}"}).fetchall()
        if not rows and (self.spec.target_table or self.spec.chunk_table):
            return None  # the target or chunk table is created by prepare()
        by_name = {r[0].lower(): r for r in rows}
        found = by_name.get(column.lower())
        if found is None:
            raise InvalidInput(f"column {column!r} not found in [{schema}].[{table}]")
        if found[1] != "vector":
            raise InvalidInput(f"column {found[0]} of [{schema}].[{table}] is {found[1]}, not VECTOR")
        return found

    def _prepare(self, info: TableInfo, eid: EmbeddingId) -> TableInfo:
        """Create the target or chunk table where it does not exist yet; check the vector size."""
        from sqlalchemy import text as sql_text

        if info.vector_dims is not None and info.vector_dims != eid.dimensions:
            raise InvalidInput(f"{info.vector} is VECTOR({info.vector_dims}) but the job embeds {eid.dimensions} "
                               "dimensions: pass dimensions matching the column")
        vec = f"VECTOR({int(eid.dimensions)}{', float16' if eid.vector_type == 'float16' else ''})"
        k, v = self.quote(info.key), self.quote(info.vector)
        # Character keys keep their collation: the same keys, compared the same way, as in the source.
        ktype = info.key_type + (f" COLLATE {info.key_collation}" if info.key_collation and self._character_key(info)
                                 else "")
        ddl = None
        if info.target_name and info.vector_dims is None:
            target = self.qualified(info.target_schema, info.target_name)
            ddl = (f"IF OBJECT_ID(:t, N'U') IS NULL CREATE TABLE {target} "
                   f"({k} {ktype} NOT NULL PRIMARY KEY, {v} {vec} NULL)",
                   f"{info.target_schema}.{info.target_name}")
        if info.chunk_name and info.vector_dims is None:
            # An INT identity as the clustered primary key: the one a SQL Server 2025 vector index accepts.
            name = info.chunk_name
            ddl = (f"IF OBJECT_ID(:t, N'U') IS NULL CREATE TABLE {self.qualified(info.chunk_schema, name)} ("
                   f"chunk_id int IDENTITY(1, 1) NOT NULL CONSTRAINT {self.quote('PK_' + name)} PRIMARY KEY CLUSTERED, "
                   f"{k} {ktype} NOT NULL, chunk_no int NOT NULL, chunk_offset int NOT NULL, "
                   f"chunk_length int NOT NULL, {v} {vec} NULL, "
                   f"CONSTRAINT {self.quote('UQ_' + name + '_chunk')} UNIQUE ({k}, chunk_no))",
                   f"{info.chunk_schema}.{name}")
        if ddl is not None:
            with self.engine.begin() as conn:
                conn.execute(sql_text(ddl[0]), {"t": ddl[1]})
        return replace(info, target_exists=True)

    def _tiles_sql(self, info: TableInfo) -> str:
        k = self.quote(info.key)
        where = f" WHERE {info.predicate}" if info.predicate else ""
        return (f"SELECT x.b, MIN(x.k), COUNT_BIG(*) FROM (SELECT t.{k} AS k, NTILE(:n) OVER (ORDER BY t.{k}) AS b "
                f"FROM {self.qualified(info.schema, info.name)} AS t{where}) AS x GROUP BY x.b ORDER BY x.b")

    # --- executor tasks

    @staticmethod
    def _character_key(info: TableInfo) -> bool:
        return info.key_type.split("(")[0] in ("nvarchar", "varchar", "nchar", "char")

    @staticmethod
    def _json_key(info: TableInfo, alias: str) -> tuple[str, str]:
        """(the type OPENJSON reads a key as, the key as the column's type from ``alias.k``).

        varchar/char keys are read as nvarchar and collated before the cast, so the conversion to
        varchar uses the key column's code page, not the database's: a varchar read from JSON is in
        the database collation, and COLLATE afterwards only relabels what the conversion already
        turned into '?'. Other keys are read as their own type (no code page involved)."""
        coll = f" COLLATE {info.key_collation}" if info.key_collation else ""
        if info.key_type.split("(")[0] in ("varchar", "char"):
            return "nvarchar(4000)", f"CAST({alias}.k{coll} AS {info.key_type})"
        return info.key_type, f"{alias}.k{coll}"

    def _pending_sql(self, info: TableInfo, conds: list[str], top: bool, keys: bool = False,
                     count: bool = False) -> str:
        """``count``: (rows, bytes of their texts as nvarchar) instead of the rows, unordered."""
        q = self.quote
        k, txt = q(info.key), q(info.text)
        join = ""
        if keys:
            jtype, jkey = self._json_key(info, "ck")
            join += f" JOIN OPENJSON(:keys) WITH (k {jtype} '$') AS ck ON t.{k} = {jkey}"
        if info.target_name and not info.target_exists:
            missing = "1"  # a dry run before the job creates its target: no row has a vector there
        elif info.target_name:
            join += f" LEFT JOIN {self.qualified(info.target_schema, info.target_name)} AS tt ON tt.{k} = t.{k}"
            missing = f"CASE WHEN tt.{q(info.vector)} IS NULL THEN 1 ELSE 0 END"
        elif info.chunked:
            missing = "0"  # the state row says whether the parent's chunks are current
        else:
            missing = f"CASE WHEN t.{q(info.vector)} IS NULL THEN 1 ELSE 0 END"
        if info.predicate:
            conds = [*conds, f"({info.predicate})"]
        where = " AND ".join(conds) or "1 = 1"
        select = ("COUNT_BIG(*), COALESCE(SUM(CAST(DATALENGTH(x.txt) AS bigint)), 0)" if count
                  else f"{'TOP (:page) ' if top else ''}x.k, x.txt, x.h")
        return (f"SELECT {select} FROM (SELECT t.{k} AS k, "
                f"CAST(t.{txt} AS nvarchar(max)) AS txt, "
                f"CASE WHEN t.{txt} IS NULL OR DATALENGTH(t.{txt}) = 0 THEN NULL "
                f"ELSE HASHBYTES('SHA2_256', CAST(t.{txt} AS nvarchar(max))) END AS h, "
                f"{missing} AS missing, s.content_hash AS sh, s.model_id AS smid, s.variant AS svar "
                f"FROM {self.qualified(info.schema, info.name)} AS t{join} "
                f"LEFT JOIN {STATE} AS s ON s.key_hash = {STATE_KEY.format(col=f't.{k}')} WHERE {where}) AS x "
                "WHERE x.h IS NULL OR x.missing = 1 OR x.sh IS NULL OR x.sh <> x.h OR x.smid <> :mid "
                "OR x.svar <> :var" + ("" if count else " ORDER BY x.k"))

    def _page_sql(self, info: TableInfo, conds: list[str]) -> str:
        return self._pending_sql(info, conds, top=True)

    def _keys_sql(self, info: TableInfo) -> str:
        return self._pending_sql(info, [], top=False, keys=True)

    def _count_sql(self, info: TableInfo) -> str:
        return self._pending_sql(info, [], top=False, count=True)

    def _vector_type(self, eid: EmbeddingId) -> str:
        return f"VECTOR({int(eid.dimensions)}{', float16' if eid.vector_type == 'float16' else ''})"

    def _state_merge(self) -> str:
        """The state of exactly the rows in @done, keyed by (source table, destination, key)."""
        return (f" MERGE {STATE} WITH (HOLDLOCK) AS s USING (SELECT DISTINCT d.row_key, d.h FROM @done AS d) AS x "
                f"ON s.key_hash = {STATE_KEY.format(col='x.row_key')} "
                "WHEN MATCHED THEN UPDATE SET content_hash = x.h, model_id = :mid, variant = :var, "
                "embedded_at = SYSUTCDATETIME() WHEN NOT MATCHED THEN INSERT (source_table, destination, row_key, "
                "content_hash, model_id, variant) VALUES (CAST(:src AS nvarchar(600)), CAST(:dst AS nvarchar(800)), "
                "x.row_key, x.h, :mid, :var);")

    _DONE = ("SET NOCOUNT ON; SET XACT_ABORT ON; DECLARE @done TABLE "
             "(row_key nvarchar(4000) COLLATE DATABASE_DEFAULT NOT NULL, h binary(32) NOT NULL); ")

    def write_sql(self, info: TableInfo, eid: EmbeddingId) -> str:
        """The one batch that writes a chunk of rows: the vectors, then the state rows of exactly the
        rows written (MERGE ... WITH (HOLDLOCK), the state shared with embed_rows)."""
        q = self.quote
        k, v = q(info.key), q(info.vector)
        vtype = self._vector_type(eid)
        coll = f" COLLATE {info.key_collation}" if info.key_collation else ""
        jtype, jkey = self._json_key(info, "j")
        rows = (f"OPENJSON(:j) WITH (k {jtype} '$[0]', v nvarchar(max) '$[1]' AS JSON, "
                "hx char(64) '$[2]') AS j")
        source = self.qualified(info.schema, info.name)
        if info.target_name:
            # Only rows still in the source: one deleted since it was read gets no target row, no state.
            target = self.qualified(info.target_schema, info.target_name)
            # (w.k is already the column's type; the COLLATE settles a target table of another collation.)
            apply = (f"MERGE {target} WITH (HOLDLOCK) AS tt USING (SELECT {jkey} AS k, CAST(j.v AS {vtype}) AS v, "
                     f"CONVERT(binary(32), j.hx, 2) AS h FROM {rows} WHERE EXISTS (SELECT 1 FROM {source} AS t "
                     f"WHERE t.{k} = {jkey})) AS w ON tt.{k} = w.k{coll} "
                     f"WHEN MATCHED THEN UPDATE SET tt.{v} = w.v WHEN NOT MATCHED THEN INSERT ({k}, {v}) "
                     f"VALUES (w.k, w.v) OUTPUT CAST(inserted.{k} AS nvarchar(4000)), w.h INTO @done (row_key, h);")
        else:
            apply = (f"UPDATE t SET t.{v} = CAST(j.v AS {vtype}) "
                     f"OUTPUT CAST(inserted.{k} AS nvarchar(4000)), CONVERT(binary(32), j.hx, 2) "
                     f"INTO @done (row_key, h) FROM {source} AS t JOIN {rows} ON t.{k} = {jkey};")
        return self._DONE + apply + self._state_merge() + " SELECT COUNT(*) FROM @done;"

    def _write(self, info: TableInfo, rows: Sequence[WriteRow], eid: EmbeddingId) -> int:
        doc = [[r.key, as_type(r.vector, eid.vector_type), r.hash.hex()] for r in rows]
        return self._apply(self.write_sql(info, eid), doc, info, eid)

    def _apply(self, sql: str, doc: list[Any], info: TableInfo, eid: EmbeddingId) -> int:
        """One write batch, its rows as one JSON document (one parameter, one round trip)."""
        from sqlalchemy import text as sql_text

        params = {"j": orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode(),
                  **self._state_params(info, eid)}
        with self.engine.begin() as conn:
            return int(conn.execute(sql_text(sql), params).scalar() or 0)

    def write_chunks_sql(self, info: TableInfo, eid: EmbeddingId) -> str:
        """One batch: the parents' old chunks out, their new chunks in, their state rows, atomically."""
        k, v = self.quote(info.key), self.quote(info.vector)
        chunks = self.qualified(info.chunk_schema, info.chunk_name or "")
        jtype, jkey = self._json_key(info, "j")
        parents = (f"OPENJSON(:j) WITH (k {jtype} '$[0]', hx char(64) '$[1]', "
                   "cs nvarchar(max) '$[2]' AS JSON) AS j")
        # A parent deleted since it was read loses its old chunks and gets no new ones, nor state.
        present = f"WHERE EXISTS (SELECT 1 FROM {self.qualified(info.schema, info.name)} AS t WHERE t.{k} = {jkey})"
        return (self._DONE
                + f"DELETE c FROM {chunks} AS c JOIN {parents} ON c.{k} = {jkey}; "
                + f"INSERT {chunks} ({k}, chunk_no, chunk_offset, chunk_length, {v}) "
                f"SELECT {jkey}, x.no, x.off, x.len, CAST(x.v AS {self._vector_type(eid)}) FROM {parents} "
                "CROSS APPLY OPENJSON(j.cs) WITH (no int '$[0]', off int '$[1]', len int '$[2]', "
                f"v nvarchar(max) '$[3]' AS JSON) AS x {present}; "
                f"INSERT @done (row_key, h) SELECT CAST(j.k AS nvarchar(4000)), CONVERT(binary(32), j.hx, 2) "
                f"FROM {parents} {present};"
                + self._state_merge() + " SELECT COUNT(*) FROM @done;")

    def _write_chunks(self, info: TableInfo, rows: Sequence[ChunkRow], eid: EmbeddingId) -> int:
        doc = [[r.key, r.hash.hex(), [[c.no + 1, c.offset + 1, c.length, as_type(c.vector, eid.vector_type)]
                                      for c in r.chunks]] for r in rows]
        return self._apply(self.write_chunks_sql(info, eid), doc, info, eid)

    # --- Change Tracking

    def tracking(self, info: TableInfo) -> bool:
        from sqlalchemy import text as sql_text

        with self.engine.connect() as conn:
            return bool(conn.execute(sql_text(
                "SELECT COUNT(*) FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(:t)"),
                {"t": f"{info.schema}.{info.name}"}).scalar())

    def enable_tracking(self, info: TableInfo) -> None:
        raise InvalidInput(
            f"Change Tracking is not enabled on [{info.schema}].[{info.name}]; a DBA runs: ALTER DATABASE CURRENT "
            "SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON); "
            f"ALTER TABLE [{info.schema}].[{info.name}] ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = ON); "
            "and grants the service's login "
            "VIEW CHANGE TRACKING on the table")

    def current_version(self, info: TableInfo) -> int:
        from sqlalchemy import text as sql_text

        with self.engine.connect() as conn:
            return int(conn.execute(sql_text("SELECT CHANGE_TRACKING_CURRENT_VERSION()")).scalar() or 0)

    def changes(self, info: TableInfo, since: int | None) -> ChangeSet | None:
        from sqlalchemy import text as sql_text

        if since is None:
            return None
        if info.primary_key != (info.key,):
            raise InvalidInput(f"Change Tracking reports primary keys: {info.key} must be the primary key of "
                               f"[{info.schema}].[{info.name}] for a change-driven sync")
        k = self.quote(info.key)
        t = self.qualified(info.schema, info.name)

        def read() -> ChangeSet | None:
            with self.engine.connect() as conn:
                low = conn.execute(sql_text("SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(:t))"),
                                   {"t": f"{info.schema}.{info.name}"}).scalar()
                if low is None:
                    raise InvalidInput(f"Change Tracking is off for [{info.schema}].[{info.name}], or the service's "
                                       "login lacks VIEW CHANGE TRACKING on it")
                if since < int(low):
                    return None  # cleaned up past our version: compare the whole table once
                current = int(conn.execute(sql_text("SELECT CHANGE_TRACKING_CURRENT_VERSION()")).scalar() or 0)
                # With TRACK_COLUMNS_UPDATED = ON, updates that left the text alone (our own vector
                # writes, when the vector lives in the same table) are not changes; without it
                # SYS_CHANGE_COLUMNS is NULL and every update is read (the hash test then skips it).
                rows = conn.execute(sql_text(
                    f"SELECT c.{k}, c.SYS_CHANGE_OPERATION FROM CHANGETABLE(CHANGES {t}, :v) AS c "
                    "WHERE c.SYS_CHANGE_VERSION <= :cur AND (c.SYS_CHANGE_OPERATION <> 'U' "
                    "OR c.SYS_CHANGE_COLUMNS IS NULL OR CHANGE_TRACKING_IS_COLUMN_IN_MASK("
                    "COLUMNPROPERTY(OBJECT_ID(:t), :txt, 'ColumnId'), c.SYS_CHANGE_COLUMNS) = 1) "
                    "ORDER BY c.SYS_CHANGE_VERSION"),
                    {"v": since, "cur": current, "t": f"{info.schema}.{info.name}", "txt": info.text}).fetchall()
            upserts, deletes = collapse([(key, str(op).strip()) for key, op in rows])
            return ChangeSet(current, upserts, deletes)

        return self.retrying("reading changes", read)

    def sync_version(self, info: TableInfo, eid: EmbeddingId) -> int | None:
        from sqlalchemy import text as sql_text

        with self.engine.connect() as conn:
            row = conn.execute(sql_text(
                f"SELECT last_version, variant FROM {SYNC} WHERE sync_key = HASHBYTES('SHA2_256', "
                "CAST(:s AS nvarchar(600)) + NCHAR(0) + CAST(:t AS nvarchar(600)))"),
                               {"s": info.state_source, "t": info.destination}).fetchone()
        return int(row[0]) if row is not None and row[1] == eid.variant else None

    def save_sync_version(self, info: TableInfo, eid: EmbeddingId, version: int) -> None:
        from sqlalchemy import text as sql_text

        def save() -> None:
            with self.engine.begin() as conn:
                conn.execute(sql_text(
                    f"MERGE {SYNC} WITH (HOLDLOCK) AS s USING (SELECT CAST(:s AS nvarchar(600)) AS source_table, "
                    "CAST(:t AS nvarchar(600)) AS target) AS x "
                    "ON s.sync_key = HASHBYTES('SHA2_256', x.source_table + NCHAR(0) + x.target) "
                    "WHEN MATCHED THEN UPDATE SET last_version = :v, variant = :var, updated_at = SYSUTCDATETIME() "
                    "WHEN NOT MATCHED THEN INSERT (source_table, target, variant, last_version) "
                    "VALUES (x.source_table, x.target, :var, :v);"),
                    {"s": info.state_source, "t": info.destination, "v": version, "var": eid.variant})

        self.retrying("recording the sync version", save)

    def text_units(self, text: str, offset: int, length: int) -> tuple[int, int]:
        """A chunk's position as SUBSTRING on nvarchar counts it (UTF-16 code units)."""
        start = utf16_offset(text, offset)
        return start, utf16_offset(text, offset + length) - start

    def delete_rows(self, info: TableInfo, keys: Sequence[Any]) -> int:
        from sqlalchemy import text as sql_text

        if not keys:
            return 0
        k = self.quote(info.key)
        doc = orjson.dumps(list(keys), default=str).decode()
        jtype, jkey = self._json_key(info, "g")
        gone = f"OPENJSON(:j) WITH (k {jtype} '$') AS g"
        sql = "SET NOCOUNT ON; SET XACT_ABORT ON; "
        if info.chunked:
            sql += (f"DELETE c FROM {self.qualified(info.chunk_schema, info.chunk_name or '')} AS c "
                    f"JOIN {gone} ON c.{k} = {jkey}; ")
        if info.target_name:
            sql += (f"DELETE tt FROM {self.qualified(info.target_schema, info.target_name)} AS tt "
                    f"JOIN {gone} ON tt.{k} = {jkey}; ")
        # This destination's state rows only: the table's other destinations keep theirs.
        sql += (f"DELETE s FROM {STATE} AS s JOIN {gone} ON s.key_hash = {STATE_KEY.format(col='g.k')}; "
                "SELECT @@ROWCOUNT;")

        def delete() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(sql_text(sql), {"j": doc, "src": info.state_source,
                                                        "dst": info.destination}).scalar() or 0)

        return self.retrying(f"deleting {len(keys)} rows' vectors", delete)

    def deleted_keys(self, info: TableInfo) -> list[Any]:
        from sqlalchemy import text as sql_text

        k = self.quote(info.key)
        # Character keys as the state stores them (nvarchar: exact), compared in the key's collation.
        as_key = (f"TRY_CAST(s.row_key COLLATE {info.key_collation} AS {info.key_type})" if info.key_collation
                  else f"TRY_CAST(s.row_key AS {info.key_type})")
        shown = "s.row_key" if self._character_key(info) else as_key
        sql = (f"SELECT {shown} FROM {STATE} AS s WHERE s.source_table = :src AND s.destination = :dst "
               f"AND NOT EXISTS (SELECT 1 FROM {self.qualified(info.schema, info.name)} AS t "
               f"WHERE t.{k} = {as_key})")
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sql_text(sql), {"src": info.state_source, "dst": info.destination})
                    if r[0] is not None]
