"""Against a real SQL Server 2025 (marker mssql): deploy, AI_GENERATE_EMBEDDINGS, embed_rows on
2,000 rows verified against the service, search, self_test, and the request SQL Server sends."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

from sqlembed.benchmark.corpus import paragraphs
from tests.support.server import ServerThread

pytestmark = [pytest.mark.mssql, pytest.mark.slow]


def _scalar(conn: Any, sql: str, *params: Any) -> Any:
    return conn.execute(sql, *params).fetchone()[0]


def _service_vectors(service: ServerThread, texts: list[str]) -> np.ndarray:
    from tests.mssql.conftest import API_KEY

    out = []
    with httpx.Client(verify=False) as c:
        for i in range(0, len(texts), 256):
            r = c.post(service.url + "/api/embed", json={"input": texts[i : i + 256]}, headers={"api-key": API_KEY})
            out.extend(r.json()["embeddings"])
    return np.asarray(out, dtype=np.float32)


def test_deploy_is_idempotent(database: Any) -> None:
    from sqlembed import __version__
    from sqlembed.db.deploy import deploy, status
    from sqlembed.db.sqlfiles import load

    report = deploy(database, load(), database.values, version=__version__)
    assert report.applied_migrations == [] and report.skipped_migrations
    st = status(database)
    assert {m["name"] for m in st["migrations"]} == {f.name for f in load() if f.kind == "migration"}
    assert "SQLEMBED_API_KEY" not in json.dumps(st)


def test_self_test_passes(database: Any) -> None:
    rows = database.execute("EXEC sqlembed.self_test").fetchall()
    failed = [(r.name, r.detail, r.fix) for r in rows if r.result != "ok"]
    assert not failed, failed


def test_ai_generate_embeddings_matches_the_service(database: Any, service: ServerThread) -> None:
    text = "SQL Server 2025 calls sqlembed"
    raw = _scalar(database, "SELECT CAST(AI_GENERATE_EMBEDDINGS(? USE MODEL sqlembed) AS nvarchar(max))", text)
    ours = np.asarray(json.loads(raw), dtype=np.float32)
    ref = _service_vectors(service, [text])[0]
    assert ours.shape == (384,)
    assert float(ours @ ref) >= 0.9999


def test_embed_rows_2000_then_incremental_then_search(database: Any, service: ServerThread) -> None:
    texts = paragraphs(2000)
    database.execute("DROP TABLE IF EXISTS dbo.docs; CREATE TABLE dbo.docs (id int NOT NULL PRIMARY KEY, "
                     "body nvarchar(max) NULL, embedding VECTOR(384) NULL)")
    cur = database.cursor()
    cur.fast_executemany = True
    cur.executemany("INSERT dbo.docs (id, body) VALUES (?, ?)", list(enumerate(texts, start=1)))
    database.execute("INSERT dbo.docs (id, body) VALUES (5001, NULL), (5002, N'')")
    row = database.execute("EXEC sqlembed.embed_rows @table = N'dbo.docs', @key_column = N'id', "
                           "@text_column = N'body', @vector_column = N'embedding', @batch_bytes = 200000").fetchone()
    assert (row.rows_embedded, row.rows_failed, row.rows_skipped) == (2000, 0, 2), row.error
    assert row.requests > 1, "@batch_bytes splits the work into several requests"

    stored = database.execute("SELECT id, CAST(embedding AS nvarchar(max)) FROM dbo.docs WHERE id <= 2000 ORDER BY id")
    got = np.asarray([json.loads(v) for _, v in stored.fetchall()], dtype=np.float32)
    ref = _service_vectors(service, texts)
    cos = (got * ref).sum(axis=1)
    assert cos.min() >= 0.9999

    again = database.execute("EXEC sqlembed.embed_rows N'dbo.docs', N'id', N'body', N'embedding'").fetchone()
    assert again.rows_embedded == 0, "nothing changed, nothing re-embedded"
    database.execute("UPDATE dbo.docs SET body = body + N' (edited)' WHERE id BETWEEN 1 AND 10")
    edited = database.execute("EXEC sqlembed.embed_rows N'dbo.docs', N'id', N'body', N'embedding'").fetchone()
    assert edited.rows_embedded == 10

    hits = database.execute("EXEC sqlembed.search @query = ?, @table = N'dbo.docs', @key_column = N'id', "
                            "@vector_column = N'embedding', @top = 3", texts[41]).fetchall()
    assert hits[0].id == 42 and hits[0].distance < 0.01


def test_failed_call_keeps_existing_vectors(database: Any) -> None:
    database.execute("DROP TABLE IF EXISTS dbo.keep; CREATE TABLE dbo.keep (id int PRIMARY KEY, body nvarchar(100), "
                     "embedding VECTOR(384) NULL); INSERT dbo.keep VALUES (1, N'one', NULL)")
    database.execute("EXEC sqlembed.embed_rows N'dbo.keep', N'id', N'body', N'embedding'")
    before = _scalar(database, "SELECT CAST(embedding AS nvarchar(max)) FROM dbo.keep WHERE id = 1")
    database.execute("UPDATE dbo.keep SET body = N'two' WHERE id = 1")
    # A wrong column type makes the call fail before any request: the old vector stays.
    bad = database.execute("EXEC sqlembed.embed_rows N'dbo.keep', N'id', N'body', N'body'").fetchone()
    assert bad.error and json.loads(bad.error)["code"] == 400
    assert _scalar(database, "SELECT CAST(embedding AS nvarchar(max)) FROM dbo.keep WHERE id = 1") == before


def test_requests_sql_server_sent_are_captured(database: Any, captured_requests: list[dict[str, Any]]) -> None:
    database.execute("DECLARE @v VECTOR(384) = AI_GENERATE_EMBEDDINGS(N'capture me' USE MODEL sqlembed)")
    embed = [r for r in captured_requests if r["path"] == "/api/embed" and "capture me" in r["body"]]
    assert embed, "AI_GENERATE_EMBEDDINGS reached the service"
    req = embed[-1]
    body = json.loads(req["body"])
    assert req["method"] == "POST" and body["input"] in ("capture me", ["capture me"])
    assert req["headers"].get("api-key") == "<redacted>"


@pytest.mark.spark
def test_bulk_job_writes_vectors_into_sql_server(database: Any, mssql_dsn: str, service: ServerThread) -> None:
    """The Spark job's SQL Server writer: staging + set-based UPDATE/MERGE, shared state with embed_rows."""
    pytest.importorskip("pyspark", reason="needs the spark extra")
    from urllib.parse import quote_plus

    from sqlembed.db.tables import TableSpec
    from sqlembed.spark.job import config_from, run
    from sqlembed.spark.session import build_session, spark_conf

    texts = paragraphs(300)
    database.execute("DROP TABLE IF EXISTS dbo.bulk; CREATE TABLE dbo.bulk (id int NOT NULL PRIMARY KEY, "
                     "body nvarchar(max) NULL, embedding VECTOR(384) NULL)")
    cur = database.cursor()
    cur.executemany("INSERT dbo.bulk (id, body) VALUES (?, ?)", list(enumerate(texts, start=1)))
    dbname = _scalar(database, "SELECT DB_NAME()")
    url = "mssql+pyodbc:///?odbc_connect=" + quote_plus(f"{mssql_dsn};Database={dbname}")
    spark = build_session(spark_conf("local[2]", gpu=False))
    try:
        cfg = config_from(TableSpec(url, "dbo.bulk", "id", "body", "embedding"),
                          model_dir=str(service.settings.model_dir), model_id=service.settings.served_model_id(),
                          batch_rows=128, threads=1)
        assert run(spark, cfg).rows_embedded == 300
        assert run(spark, cfg).rows_embedded == 0, "a re-run writes nothing"
    finally:
        spark.stop()
    # embed_rows sees the same state (same content hash): nothing left for it to do.
    row = database.execute("EXEC sqlembed.embed_rows N'dbo.bulk', N'id', N'body', N'embedding'").fetchone()
    assert row.rows_embedded == 0
    got = json.loads(_scalar(database, "SELECT CAST(embedding AS nvarchar(max)) FROM dbo.bulk WHERE id = 5"))
    ref = _service_vectors(service, [texts[4]])[0]
    assert float(np.asarray(got, dtype=np.float32) @ ref) >= 0.9999
