"""One state per destination (issue 22, items 2 and 6): a table embedded into two places keeps one
state row per key and place, so neither run re-embeds the other's rows nor skips a changed text.

The jobs run as a Spark task runs a slice (spark/partition.run_slice: read pending pages, embed,
write vectors plus state in one transaction) against a real SQLite file, with a deterministic
stand-in for the model: fast, and the SQL is the SQL a job runs. SQL Server's statements are
checked as text (no server here; tests/mssql runs them).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from sqlembed.db.targets import EmbeddingId, TableInfo, TableSpec, WriteRow, content_hash
from sqlembed.db.targets.mssql import STATE_KEY, MssqlTarget
from sqlembed.db.targets.spec import ChunkRow, ChunkVector
from sqlembed.db.targets.sqlite import STATE, SqliteTarget
from sqlembed.spark.partition import run_slice

DIMS = 4
MODEL = "fake-model"


def fake_vector(text: str) -> np.ndarray:
    v = np.frombuffer(hashlib.sha256(text.encode()).digest()[: 4 * DIMS], dtype=np.uint32).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeEmbedder:
    """What run_slice asks of an engine: a vector per text, the same one for the same text."""

    manifest = SimpleNamespace(normalize=True)

    def embed(self, texts: list[str], input_type: str | None = None) -> np.ndarray:
        return np.stack([fake_vector(t) for t in texts])


def job(url: str, text: str = "body", vector: str = "embedding", **kw: Any) -> tuple[int, int]:
    """One hash-mode job as the Spark job runs it, without Spark: (rows deleted, rows embedded)."""
    target = SqliteTarget(TableSpec(url, "docs", "id", text, vector, **kw), retry_s=1)
    try:
        info = target.check()
        info = target.prepare(info, EmbeddingId(MODEL, DIMS))
        deleted = target.delete_rows(info, target.deleted_keys(info))
        cfg = SimpleNamespace(queue_chunks=2, batch_rows=2, page_rows=3, info=info, eid=EmbeddingId(MODEL, DIMS))
        _, done, failed = run_slice(target, FakeEmbedder(), cfg, None, None, lambda *_: None)  # type: ignore[arg-type]
        assert failed == 0
        return deleted, done
    finally:
        target.close()


def two_columns(path: Path, rows: int = 5) -> str:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body TEXT, title_vec TEXT, body_vec TEXT)")
    conn.executemany("INSERT INTO docs (id, title, body) VALUES (?, ?, ?)",
                     [(i, f"title {i}", f"the body of row {i}") for i in range(1, rows + 1)])
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def vectors(path: Path, column: str, table: str = "docs") -> dict[int, np.ndarray]:
    conn = sqlite3.connect(path)
    try:
        return {k: np.asarray(json.loads(v), dtype=np.float32)
                for k, v in conn.execute(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")}
    finally:
        conn.close()


def test_two_vector_columns_of_one_table_keep_one_state_each(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    url = two_columns(db)
    title = {"text": "title", "vector": "title_vec"}
    body = {"text": "body", "vector": "body_vec"}
    assert job(url, **title) == (0, 5)
    assert job(url, **body) == (0, 5)
    # Before destinations, both shared one state row per key: each run re-embedded all the other's rows.
    assert job(url, **title) == (0, 0)
    assert job(url, **body) == (0, 0)

    conn = sqlite3.connect(db)
    conn.execute("UPDATE docs SET title = 'a new title' WHERE id = 2")
    conn.commit()
    assert job(url, **title) == (0, 1)
    assert job(url, **body) == (0, 0)
    assert float(vectors(db, "title_vec")[2] @ fake_vector("a new title")) == pytest.approx(1.0)
    assert float(vectors(db, "body_vec")[2] @ fake_vector("the body of row 2")) == pytest.approx(1.0)

    # A deleted row's state goes per destination: each job removes its own, not the other's.
    conn.execute("DELETE FROM docs WHERE id = 4")
    conn.commit()
    assert job(url, **title) == (1, 0)
    left = conn.execute(f"SELECT COUNT(*) FROM {STATE} WHERE row_key = '4'").fetchone()[0]
    assert left == 1, "the body destination's state row waits for its own job"
    assert job(url, **body) == (1, 0)
    assert conn.execute(f"SELECT COUNT(*) FROM {STATE}").fetchone()[0] == 8
    conn.close()


def test_in_place_and_target_table_both_re_embed_a_changed_text(tmp_path: Path) -> None:
    db = tmp_path / "both.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, embedding TEXT)")
    conn.executemany("INSERT INTO docs (id, body) VALUES (?, ?)", [(i, f"text {i}") for i in range(1, 5)])
    conn.commit()
    url = f"sqlite:///{db}"
    assert job(url) == (0, 4)
    assert job(url, target_table="doc_vectors") == (0, 4)
    assert job(url) == (0, 0)
    assert job(url, target_table="doc_vectors") == (0, 0)

    conn.execute("UPDATE docs SET body = 'changed text' WHERE id = 3")
    conn.commit()
    assert job(url) == (0, 1)
    # Before destinations the in-place job's state row said "current" for the target table too,
    # and the target kept the old text's vector forever.
    assert job(url, target_table="doc_vectors") == (0, 1)
    assert float(vectors(db, "embedding")[3] @ fake_vector("changed text")) == pytest.approx(1.0)
    assert float(vectors(db, "embedding", "doc_vectors")[3] @ fake_vector("changed text")) == pytest.approx(1.0)
    assert job(url) == (0, 0)
    assert job(url, target_table="doc_vectors") == (0, 0)
    destinations = {d for (d,) in conn.execute(f"SELECT DISTINCT destination FROM {STATE}")}
    assert destinations == {"[].[docs].[embedding]", "[].[doc_vectors].[embedding]"}
    assert {s for (s,) in conn.execute(f"SELECT DISTINCT source_table FROM {STATE}")} == {"docs"}
    conn.close()


def test_destination_is_where_the_vector_is_written(tmp_path: Path) -> None:
    url = two_columns(tmp_path / "d.db")

    def info(**kw: Any) -> TableInfo:
        target = SqliteTarget(TableSpec(url, "docs", "id", "body", kw.pop("vector", "body_vec"), **kw))
        try:
            return target.check()
        finally:
            target.close()

    assert info().destination == "[].[docs].[body_vec]"
    assert info(target_table="vecs", vector="v").destination == "[].[vecs].[v]"
    chunked = info(chunk_table="doc_chunks", chunk_tokens=64, vector="v")
    assert chunked.destination == "[].[doc_chunks].[v]"
    assert chunked.state_source == "docs", "no '>chunk table' suffix: the destination says where"


# --- rows that vanish between read and write -----------------------------------------------------

def _old_read(url: str, **kw: Any) -> tuple[SqliteTarget, TableInfo, EmbeddingId]:
    target = SqliteTarget(TableSpec(url, "docs", "id", "body", "body_vec", **kw), retry_s=1)
    eid = EmbeddingId(MODEL, DIMS, chunk_tokens=kw.get("chunk_tokens"))
    return target, target.prepare(target.check(), eid), eid


@pytest.mark.parametrize("where", [{}, {"target_table": "doc_vectors"}])
def test_a_row_deleted_between_read_and_write_gets_no_state_and_is_not_counted(
        tmp_path: Path, where: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "gone.db"
    url = two_columns(db, rows=3)
    target, info, eid = _old_read(url, **where)
    try:
        rows = [WriteRow(k, content_hash(f"the body of row {k}"), fake_vector(str(k))) for k in (1, 2, 3)]
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM docs WHERE id = 2")  # after the read, before the write
        conn.commit()
        with caplog.at_level(logging.WARNING, logger="sqlembed.db.targets.base"):
            assert target.write(info, rows, eid) == 2
        assert sorted(k for (k,) in conn.execute(f"SELECT row_key FROM {STATE}")) == ["1", "3"]
        if where:
            assert [k for (k,) in conn.execute("SELECT id FROM doc_vectors ORDER BY id")] == [1, 3]
        conn.close()
        warned = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
        assert len(warned) == 1 and warned[0].startswith("1 of 3 rows")
        assert "the body of row" not in warned[0], "counts only, never the texts"
    finally:
        target.close()


def test_a_chunk_parent_deleted_between_read_and_write_gets_no_chunks_and_no_state(tmp_path: Path) -> None:
    db = tmp_path / "gone_chunks.db"
    url = two_columns(db, rows=3)
    target, info, eid = _old_read(url, chunk_table="doc_chunks", chunk_tokens=64)
    try:
        rows = [ChunkRow(k, content_hash(f"the body of row {k}"), [ChunkVector(0, 0, 5, fake_vector(str(k)))])
                for k in (1, 2, 3)]
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM docs WHERE id = 3")
        conn.commit()
        assert target.write_chunks(info, rows, eid) == 2
        assert [k for (k,) in conn.execute("SELECT id FROM doc_chunks ORDER BY id")] == [1, 2]
        assert sorted(k for (k,) in conn.execute(f"SELECT row_key FROM {STATE}")) == ["1", "2"]
        conn.close()
    finally:
        target.close()


# --- a state table from before destinations ------------------------------------------------------

def _old_state(path: Path, variant: bool) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE {STATE} (source_table TEXT NOT NULL, row_key TEXT NOT NULL, content_hash BLOB "
                 "NOT NULL, model_id TEXT NOT NULL, " + ("variant TEXT NOT NULL DEFAULT '', " if variant else "")
                 + "embedded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (source_table, row_key))")
    conn.execute("CREATE TABLE doc_chunks (id NOT NULL, chunk_no INTEGER NOT NULL, chunk_offset INTEGER NOT NULL, "
                 "chunk_length INTEGER NOT NULL, chunk_vec TEXT, PRIMARY KEY (id, chunk_no))")
    rows = [("docs", str(k), content_hash(f"the body of row {k}"), MODEL) for k in (1, 2, 3)]   # in place: which?
    rows += [("docs>doc_chunks", str(k), content_hash(f"the body of row {k}"), MODEL) for k in (1, 2)]
    rows += [("docs>gone_chunks", "1", content_hash("the body of row 1"), MODEL)]  # no such table any more
    conn.executemany(f"INSERT INTO {STATE} (source_table, row_key, content_hash, model_id) VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("variant", [True, False], ids=["0.2", "0.1"])
def test_an_old_state_table_is_migrated_once(tmp_path: Path, variant: bool, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "old.db"
    url = two_columns(db, rows=3)
    _old_state(db, variant)
    with caplog.at_level(logging.WARNING, logger="sqlembed.db.targets.sqlite"):
        assert job(url, text="body", vector="body_vec") == (0, 3), "unattributable rows are embedded once more"
    warned = [r.getMessage() for r in caplog.records if "could not be attributed" in r.getMessage()]
    assert len(warned) == 1 and "4 of 6 state rows" in warned[0]

    conn = sqlite3.connect(db)
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({STATE})")]
    assert columns[:3] == ["source_table", "destination", "row_key"]
    pk = [r[1] for r in sorted(conn.execute(f"PRAGMA table_info({STATE})"), key=lambda r: r[5]) if r[5]]
    assert pk == ["source_table", "destination", "row_key"]
    moved = conn.execute(f"SELECT source_table, destination, row_key, variant FROM {STATE} "
                         "WHERE destination LIKE '%doc_chunks%' ORDER BY row_key").fetchall()
    assert moved == [("docs", "[].[doc_chunks].[chunk_vec]", "1", ""), ("docs", "[].[doc_chunks].[chunk_vec]", "2", "")]
    assert conn.execute(f"SELECT COUNT(*) FROM {STATE} WHERE destination = '[].[docs].[body_vec]'").fetchone()[0] == 3
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE ?", (f"{STATE}_%",)).fetchone()[0] == 0
    conn.close()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sqlembed.db.targets.sqlite"):
        assert job(url, text="body", vector="body_vec") == (0, 0)
    assert not [r for r in caplog.records if "attributed" in r.getMessage()], "migrated once"


def test_an_old_chunk_state_is_kept_for_the_job_that_wrote_it(tmp_path: Path) -> None:
    # The chunk table has two candidate vector columns: only this job's own spec says which one.
    db = tmp_path / "own.db"
    url = two_columns(db, rows=2)
    _old_state(db, variant=True)
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE doc_chunks ADD COLUMN note TEXT")
    conn.commit()
    target = SqliteTarget(TableSpec(url, "docs", "id", "body", "chunk_vec", chunk_table="doc_chunks",
                                    chunk_tokens=64))
    try:
        info = target.check()
    finally:
        target.close()
    kept = conn.execute(f"SELECT source_table, destination, row_key FROM {STATE} ORDER BY row_key").fetchall()
    assert kept == [("docs", info.destination, "1"), ("docs", info.destination, "2")]
    assert info.destination == "[].[doc_chunks].[chunk_vec]"
    conn.close()


# --- SQL Server: the statements as text ----------------------------------------------------------

class _NoRows(list[Any]):
    def scalar(self) -> int:
        return 0


class _Recorder:
    """Stands in for the engine: records each statement, answers nothing."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def begin(self) -> _Recorder:
        return self

    connect = begin

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *_: Any) -> None:
        return None

    def execute(self, statement: Any, params: Any = None) -> Any:
        self.sql.append(str(statement))
        self.params = params
        return _NoRows()


def _mssql(**kw: Any) -> tuple[MssqlTarget, _Recorder, TableInfo]:
    target = MssqlTarget.__new__(MssqlTarget)
    target.quote = lambda s: f"[{s}]"  # type: ignore[method-assign]
    recorder = _Recorder()
    target.engine = recorder
    target.retrying = lambda what, fn: fn()  # type: ignore[method-assign,assignment,return-value]
    fields: dict[str, Any] = {"schema": "dbo", "name": "docs", "key": "id", "text": "body", "vector": "embedding",
                              "key_type": "int", "key_collation": None, "columns": frozenset({"id", "body"}),
                              "state_source": "[dbo].[docs]"}
    return target, recorder, TableInfo(**{**fields, **kw})


def _statements(key_type: str, collation: str | None, **kw: Any) -> list[str]:
    target, recorder, info = _mssql(key_type=key_type, key_collation=collation, **kw)
    eid = EmbeddingId(MODEL, 384, chunk_tokens=64 if info.chunked else None)
    sqls = [target._keys_sql(info), target._page_sql(info, []),
            target.write_chunks_sql(info, eid) if info.chunked else target.write_sql(info, eid)]
    target.delete_rows(info, ["a"])
    target.deleted_keys(info)
    return sqls + recorder.sql


PLACES: list[dict[str, Any]] = [{}, {"target_schema": "dbo", "target_name": "vecs"},
                                {"chunk_schema": "dbo", "chunk_name": "doc_chunks"}]


@pytest.mark.parametrize("where", PLACES, ids=["in-place", "target", "chunks"])
def test_mssql_state_key_includes_the_destination(where: dict[str, Any]) -> None:
    assert STATE_KEY == ("HASHBYTES('SHA2_256', CAST(:src AS nvarchar(max)) + NCHAR(0) + CAST(:dst AS nvarchar(800)) "
                         "+ NCHAR(0) + CAST({col} AS nvarchar(4000)))")
    target, _, info = _mssql(**where)
    assert info.state_source == "[dbo].[docs]" and ">" not in info.state_source
    assert target._state_params(info, EmbeddingId(MODEL, 384))["dst"] == info.destination
    for sql in _statements("int", None, **where):
        hashes = re.findall(r"HASHBYTES\('SHA2_256', CAST\(:src[^;]*", sql)
        assert all(h.startswith("HASHBYTES('SHA2_256', CAST(:src AS nvarchar(max)) + NCHAR(0) + "
                                "CAST(:dst AS nvarchar(800)) + NCHAR(0) + CAST(") for h in hashes), sql
        assert "nvarchar(600)) + NCHAR(0)" not in sql, "the old key (no destination) is gone"
        if "INSERT (source_table" in sql:
            assert "INSERT (source_table, destination, row_key," in sql
            assert "CAST(:dst AS nvarchar(800))" in sql
        if "FROM sqlembed.embedding_state AS s WHERE" in sql:  # deleted_keys
            assert "s.source_table = :src AND s.destination = :dst" in sql
    write = _statements("int", None, **where)[2]
    assert write.count("HASHBYTES('SHA2_256', CAST(:src") == 1, "the state MERGE addresses rows by the key"


def test_mssql_refuses_a_state_table_without_destination() -> None:
    check = inspect.getsource(MssqlTarget._check)
    assert "COL_LENGTH(N'sqlembed.embedding_state', N'destination')" in check
    assert "N'key_hash'" not in check


@pytest.mark.parametrize("where", PLACES, ids=["in-place", "target", "chunks"])
@pytest.mark.parametrize("key_type", ["varchar(64)", "char(10)"])
def test_mssql_varchar_keys_are_collated_before_the_cast(where: dict[str, Any], key_type: str) -> None:
    # Read as varchar, OPENJSON converts through the database's code page: Cyrillic keys in a Latin1
    # database became '?', matched nothing and stayed pending forever.
    coll = "Cyrillic_General_CI_AS"
    sqls = _statements(key_type, coll, **where)
    openjson_keys = [m for sql in sqls for m in re.findall(r"OPENJSON\(:\w+\) WITH \(k ([^']+) '", sql)]
    assert len(openjson_keys) >= 3 and set(openjson_keys) == {"nvarchar(4000)"}, openjson_keys
    joined = " ".join(sqls)
    assert re.search(rf"CAST\(\w+\.k COLLATE {coll} AS {re.escape(key_type)}\)", joined)
    for m in re.finditer(r"\b(j|ck|g)\.k COLLATE " + coll, joined):  # the keys OPENJSON read
        before = joined[max(0, m.start() - 5): m.start()]
        after = joined[m.end(): m.end() + 4]
        assert before == "CAST(" and after == " AS ", f"COLLATE after the conversion: {joined[m.start() - 40:m.end()]}"
    for sql in sqls:
        if sql.startswith("SELECT") and "embedding_state AS s WHERE" in sql:  # deleted_keys: keys as stored
            assert sql.startswith("SELECT s.row_key ") and f"TRY_CAST(s.row_key COLLATE {coll} AS {key_type})" in sql


def test_mssql_nvarchar_and_int_keys_stay_simple() -> None:
    nv = " ".join(_statements("nvarchar(64)", "Latin1_General_CS_AS"))
    assert "WITH (k nvarchar(64) '$" in nv and "j.k COLLATE Latin1_General_CS_AS" in nv
    assert "CAST(j.k COLLATE" not in nv
    ints = " ".join(_statements("int", None))
    assert "WITH (k int '$[0]'" in ints and "ON t.[id] = j.k;" in ints and "COLLATE Latin1" not in ints


def test_mssql_created_tables_keep_a_character_keys_collation() -> None:
    target, recorder, info = _mssql(key_type="varchar(64)", key_collation="Cyrillic_General_CI_AS",
                                    target_schema="dbo", target_name="vecs")
    target.prepare = MssqlTarget._prepare.__get__(target)  # type: ignore[method-assign]
    target._prepare(info, EmbeddingId(MODEL, 384))
    assert "[id] varchar(64) COLLATE Cyrillic_General_CI_AS NOT NULL PRIMARY KEY" in recorder.sql[-1]


def test_mssql_write_counts_only_rows_still_in_the_source() -> None:
    for where in PLACES[1:]:
        target, _, info = _mssql(**where)
        eid = EmbeddingId(MODEL, 384, chunk_tokens=64 if info.chunked else None)
        sql = target.write_chunks_sql(info, eid) if info.chunked else target.write_sql(info, eid)
        assert "WHERE EXISTS (SELECT 1 FROM [dbo].[docs] AS t WHERE t.[id] = j.k)" in sql
        assert sql.rstrip().endswith("SELECT COUNT(*) FROM @done;")
