"""SQL Server: names resolved in the catalog, pending rows decided by HASHBYTES on the server, and
each chunk written in one round trip (one JSON document parameter, OPENJSON on the server, a
set-based UPDATE or MERGE and the state MERGE in one transaction).

The state table (migration 030) is keyed by SHA-256 of (source table, key text); both hashes are
computed by SQL Server, exactly as ``sqlembed.embed_rows`` computes them, so the two paths share
one state and never redo each other's work.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import orjson

from sqlembed.db.targets.base import EmbeddingId, SqlTarget, TableInfo, pairs
from sqlembed.db.targets.spec import Dialect, PendingRow, VectorType, WriteRow, render_predicate
from sqlembed.db.targets.vectors import as_type
from sqlembed.errors import InvalidInput

KEY_TYPES = {"int", "bigint", "smallint", "tinyint", "uniqueidentifier", "nvarchar", "varchar", "nchar", "char"}
TEXT_TYPES = {"nvarchar", "varchar", "nchar", "char", "ntext", "text"}
_COLLATION = re.compile(r"[A-Za-z0-9_]{1,128}")
STATE = "sqlembed.embedding_state"
# The state key exactly as migration 030's computed column and sqlembed.embed_rows build it.
STATE_KEY = "HASHBYTES('SHA2_256', CAST(:src AS nvarchar(300)) + NCHAR(0) + CAST(t.{k} AS nvarchar(4000)))"


def _declared(type_name: str, max_length: int) -> str:
    if type_name in ("nvarchar", "nchar"):
        return f"{type_name}({max_length // 2})"
    if type_name in ("varchar", "char"):
        return f"{type_name}({max_length})"
    return type_name


class MssqlTarget(SqlTarget):
    dialect: ClassVar[Dialect] = "tsql"

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
                "CASE WHEN COL_LENGTH(N'sqlembed.embedding_state', N'key_hash') IS NULL THEN 0 ELSE 1 END"),
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
            cols = {r[0]: r for r in conn.execute(sql_text(
                "SELECT c.name, TYPE_NAME(c.user_type_id), c.max_length, c.collation_name, c.vector_dimensions, "
                "c.vector_base_type_desc FROM sys.columns AS c WHERE c.object_id = :oid"), {"oid": oid})}
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
            vec_schema, vec_table = schema, name
            tschema = tname = None
            if self.spec.target_table:
                tschema, _, tname = self.spec.target_table.rpartition(".")
                tschema = tschema or schema
                vec_schema, vec_table = tschema, tname
            vector = self._vector_column(conn, vec_schema, vec_table, self.spec.vector)
            perm = conn.execute(sql_text("SELECT HAS_PERMS_BY_NAME(:t, 'OBJECT', 'UPDATE', :c, 'COLUMN')"),
                                {"t": f"{vec_schema}.{vec_table}", "c": vector[0] if vector else self.spec.vector}
                                ).scalar()
            if vector is not None and not perm:
                raise InvalidInput(f"the service's login may not UPDATE {vector[0]} of [{vec_schema}].[{vec_table}]")
        collation = key[3] if key[3] and _COLLATION.fullmatch(key[3]) else None
        predicate = render_predicate(self.spec.where, self.dialect, "t", set(cols)) if self.spec.where else None
        vtype: VectorType = "float16" if vector is not None and vector[5] == "float16" else "float32"
        return TableInfo(schema=schema, name=name, key=key[0], text=text[0],
                         vector=vector[0] if vector else self.spec.vector, key_type=_declared(key[1], key[2]),
                         key_collation=collation, columns=frozenset(cols), state_source=f"[{schema}].[{name}]",
                         vector_dims=int(vector[4]) if vector is not None and vector[4] else None, vector_type=vtype,
                         target_schema=tschema, target_name=tname, predicate=predicate, database=database)

    def _vector_column(self, conn: Any, schema: str | None, table: str, column: str) -> Any:
        from sqlalchemy import text as sql_text

        rows = conn.execute(sql_text(
            "SELECT c.name, TYPE_NAME(c.user_type_id), c.max_length, c.collation_name, c.vector_dimensions, "
            "c.vector_base_type_desc FROM sys.columns AS c WHERE c.object_id = OBJECT_ID(:t)"),
            {"t": f"{schema}.{table}"}).fetchall()
        if not rows and self.spec.target_table:
            return None  # the target table is created by prepare()
        by_name = {r[0].lower(): r for r in rows}
        found = by_name.get(column.lower())
        if found is None:
            raise InvalidInput(f"column {column!r} not found in [{schema}].[{table}]")
        if found[1] != "vector":
            raise InvalidInput(f"column {found[0]} of [{schema}].[{table}] is {found[1]}, not VECTOR")
        return found

    def _prepare(self, info: TableInfo, eid: EmbeddingId) -> TableInfo:
        """Create the target table where it does not exist yet; check the vector size."""
        from sqlalchemy import text as sql_text

        if info.vector_dims is not None and info.vector_dims != eid.dimensions:
            raise InvalidInput(f"{info.vector} is VECTOR({info.vector_dims}) but the job embeds {eid.dimensions} "
                               "dimensions: pass dimensions matching the column")
        if info.target_name and info.vector_dims is None:
            target = self.qualified(info.target_schema, info.target_name)
            ddl = (f"IF OBJECT_ID(:t, N'U') IS NULL CREATE TABLE {target} ({self.quote(info.key)} {info.key_type} "
                   f"NOT NULL PRIMARY KEY, {self.quote(info.vector)} VECTOR({int(eid.dimensions)}"
                   f"{', float16' if eid.vector_type == 'float16' else ''}) NULL)")
            with self.engine.begin() as conn:
                conn.execute(sql_text(ddl), {"t": f"{info.target_schema}.{info.target_name}"})
        return info

    def _slice_bounds(self, info: TableInfo, slices: int) -> tuple[int, list[tuple[Any, Any]]]:
        from sqlalchemy import text as sql_text

        k = self.quote(info.key)
        where = f" WHERE {info.predicate}" if info.predicate else ""
        sql = (f"SELECT x.b, MIN(x.k), COUNT_BIG(*) FROM (SELECT t.{k} AS k, NTILE(:n) OVER (ORDER BY t.{k}) AS b "  # nosec B608
               f"FROM {self.qualified(info.schema, info.name)} AS t{where}) AS x GROUP BY x.b ORDER BY x.b")
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
            sql = (f"SELECT TOP (:page) x.k, x.txt, x.h FROM (SELECT t.{k} AS k, "  # nosec B608
                   f"CAST(t.{txt} AS nvarchar(max)) AS txt, "
                   f"CASE WHEN t.{txt} IS NULL OR DATALENGTH(t.{txt}) = 0 THEN NULL "
                   f"ELSE HASHBYTES('SHA2_256', CAST(t.{txt} AS nvarchar(max))) END AS h, "
                   f"CASE WHEN {vec} IS NULL THEN 1 ELSE 0 END AS missing, s.content_hash AS sh, "
                   f"s.model_id AS smid, s.variant AS svar FROM {self.qualified(info.schema, info.name)} AS t{join} "
                   f"LEFT JOIN {STATE} AS s ON s.key_hash = {STATE_KEY.format(k=k)} WHERE {where}) AS x "
                   "WHERE x.h IS NULL OR x.missing = 1 OR x.sh IS NULL OR x.sh <> x.h OR x.smid <> :mid "
                   "OR x.svar <> :var ORDER BY x.k")

            def page(sql: str = sql) -> list[PendingRow]:
                with self.engine.connect() as conn:
                    return [PendingRow(key, text if h is not None else None, bytes(h) if h is not None else None)
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

    def write_sql(self, info: TableInfo, eid: EmbeddingId) -> str:
        """The one batch that writes a chunk: the vectors, then the state rows of exactly the rows written."""
        q = self.quote
        k, v = q(info.key), q(info.vector)
        vtype = f"VECTOR({int(eid.dimensions)}{', float16' if eid.vector_type == 'float16' else ''})"
        coll = f" COLLATE {info.key_collation}" if info.key_collation else ""
        rows = (f"OPENJSON(:j) WITH (k {info.key_type} '$[0]', v nvarchar(max) '$[1]' AS JSON, "
                "hx char(64) '$[2]') AS j")
        if info.target_name:
            target = self.qualified(info.target_schema, info.target_name)
            apply = (f"MERGE {target} WITH (HOLDLOCK) AS tt USING (SELECT j.k, CAST(j.v AS {vtype}) AS v, "
                     f"CONVERT(binary(32), j.hx, 2) AS h FROM {rows}) AS j ON tt.{k} = j.k{coll} "
                     f"WHEN MATCHED THEN UPDATE SET tt.{v} = j.v WHEN NOT MATCHED THEN INSERT ({k}, {v}) "
                     f"VALUES (j.k, j.v) OUTPUT CAST(inserted.{k} AS nvarchar(4000)), j.h INTO @done (row_key, h);")
        else:
            apply = (f"UPDATE t SET t.{v} = CAST(j.v AS {vtype}) "
                     f"OUTPUT CAST(inserted.{k} AS nvarchar(4000)), CONVERT(binary(32), j.hx, 2) "
                     f"INTO @done (row_key, h) FROM {self.qualified(info.schema, info.name)} AS t "
                     f"JOIN {rows} ON t.{k} = j.k{coll};")
        return ("SET NOCOUNT ON; SET XACT_ABORT ON; DECLARE @done TABLE "
                "(row_key nvarchar(4000) COLLATE DATABASE_DEFAULT NOT NULL, h binary(32) NOT NULL); "
                + apply +
                f" MERGE {STATE} WITH (HOLDLOCK) AS s USING (SELECT DISTINCT "
                "CAST(:src AS nvarchar(300)) AS source_table, d.row_key, d.h FROM @done AS d) AS x "
                "ON s.key_hash = HASHBYTES('SHA2_256', x.source_table + NCHAR(0) + x.row_key) "
                "WHEN MATCHED THEN UPDATE SET content_hash = x.h, model_id = :mid, variant = :var, "
                "embedded_at = SYSUTCDATETIME() WHEN NOT MATCHED THEN INSERT (source_table, row_key, content_hash, "
                "model_id, variant) VALUES (x.source_table, x.row_key, x.h, :mid, :var);"
                " SELECT COUNT(*) FROM @done;")

    def _write(self, info: TableInfo, rows: Sequence[WriteRow], eid: EmbeddingId) -> int:
        from sqlalchemy import text as sql_text

        doc = orjson.dumps([[r.key, as_type(r.vector, eid.vector_type), r.hash.hex()] for r in rows],
                           option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
        with self.engine.begin() as conn:
            written = conn.execute(sql_text(self.write_sql(info, eid)),
                                   {"j": doc, "src": info.state_source, "mid": eid.model_id, "var": eid.variant}
                                   ).scalar()
        return int(written or 0)
