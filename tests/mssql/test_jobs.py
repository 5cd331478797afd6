"""Bulk jobs against SQL Server 2025 (markers mssql, spark): submitted, watched and cancelled from
T-SQL by an app user, vectors verified against the service, the state shared with embed_rows,
dimensions below the model's on the Spark path, and filters that are not one boolean expression
refused before any SQL runs; jobs with autocommit off, and a Cyrillic-collated varchar key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sqlembed.benchmark.corpus import paragraphs
from sqlembed.settings import Settings
from tests.mssql.conftest import (
    API_KEY,
    Deployment,
    Faults,
    database_name,
    database_url,
    make_cyrillic_keyed,
    make_docs,
    make_service,
    new_user,
    scalar,
)
from tests.mssql.test_sqlserver2025 import embed_rows, service_vectors, stored
from tests.support.server import ServerThread, with_settings

pytestmark = [pytest.mark.mssql, pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def job_service(
    base_settings: Settings,
    tls_dir: Path,
    mssql_dsn: str,
    spark_local: Any,
    captured_requests: list[dict[str, Any]],
    faults: Faults,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerThread, str]]:
    name = database_name("jobs")
    # Job records in the database's own sqlembed.jobs (SQLEMBED_JOB_STORE=db:app): the store a
    # master on Azure Container Apps uses. The database is created after the service starts; the
    # store is reached at the first submission.
    settings = with_settings(
        base_settings,
        api_keys=API_KEY,
        databases=json.dumps({"app": database_url(mssql_dsn, name)}),
        job_store="db:app",
        state_dir=tmp_path_factory.mktemp("jobs-state"),
    )
    srv = make_service(settings, tls_dir, captured_requests, faults, spark_factory=lambda: spark_local)
    yield srv, name
    srv.stop()


@pytest.fixture(scope="module")
def jobs(deployment: Callable[..., Deployment], job_service: tuple[ServerThread, str]) -> Deployment:
    srv, name = job_service
    return deployment("jobs", name=name, srv=srv)


def submit(conn: Any, table: str, **extra: str) -> tuple[int, str | None, str | None]:
    args = "".join(f", @{k} = {v}" for k, v in extra.items())
    row = conn.execute(
        "DECLARE @rc int, @job nvarchar(64), @e nvarchar(max); "
        f"EXEC @rc = sqlembed.submit_job @database = N'app', @table = N'{table}', @key_column = N'id', "
        f"@text_column = N'body', @vector_column = N'embedding'{args}, @job_id = @job OUTPUT, "
        "@error = @e OUTPUT; SELECT @rc AS rc, @job AS job, @e AS error"
    ).fetchone()
    return int(row.rc), row.job, row.error


def wait(conn: Any, job: str, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute("EXEC sqlembed.job_status @job_id = ?", job).fetchone()
        if row.state in ("succeeded", "failed", "cancelled"):
            return row
        time.sleep(1)
    raise AssertionError(f"job {job} still {row.state}")


def test_submit_poll_and_share_state_with_embed_rows(jobs: Deployment, job_service: tuple[ServerThread, str]) -> None:
    srv, _ = job_service
    texts = paragraphs(300)
    make_docs(jobs.owner, "dbo.bulk", list(texts))
    user = new_user(jobs, "jobuser", "GRANT SELECT, UPDATE ON dbo.bulk TO {user}")
    with user.connect() as conn:
        rc, job, error = submit(conn, "dbo.bulk")
        assert rc == 0 and job, error
        done = wait(conn, job)
        assert done.state == "succeeded" and done.rows_done == 300 and done.dimensions == 384, done.last_error
        # Recorded where T-SQL reads it, with who submitted it.
        assert scalar(jobs.owner, "SELECT submitted_by FROM sqlembed.jobs WHERE job_id = ?", job)
    got = stored(jobs.owner, "dbo.bulk")
    ref = service_vectors(srv, texts)
    assert min(float(got[i + 1] @ ref[i]) for i in range(300)) >= 0.9999
    # The same state as embed_rows: nothing left for it, and a re-run of the job writes nothing.
    assert embed_rows(jobs.owner, "dbo.bulk").rows_embedded == 0
    with user.connect() as conn:
        _, again, _ = submit(conn, "dbo.bulk")
        assert wait(conn, again).rows_done == 0


def test_jobs_submitted_and_polled_with_autocommit_off(jobs: Deployment) -> None:
    make_docs(jobs.owner, "dbo.bulk_ac", paragraphs(50))
    user = new_user(jobs, "acuser", "GRANT SELECT, UPDATE ON dbo.bulk_ac TO {user}")
    conn = user.connect(autocommit=False)  # pyodbc's and SQLAlchemy's default: implicit transactions
    try:
        rc, job, error = submit(conn, "dbo.bulk_ac")  # the first statement: no transaction open yet
        assert rc == 0 and job, error
        assert scalar(conn, "SELECT COUNT(*) FROM sqlembed.my_jobs WHERE job_id = ?", job) == 1  # opens one
        done = wait(conn, job)  # job_status only reads: it polls inside the client's transaction
        assert done.state == "succeeded" and done.rows_done == 50, done.last_error
        # Cancelling changes the service, which no rollback undoes: refused inside the transaction.
        assert scalar(conn, "DECLARE @rc int; EXEC @rc = sqlembed.cancel_job @job_id = ?; SELECT @rc", job) == 409
        conn.rollback()
    finally:
        conn.close()
    # The client's rollback lost nothing: submit_job committed its own row before returning.
    submitter = scalar(jobs.owner, "SELECT submitted_by FROM sqlembed.jobs WHERE job_id = ?", job)
    assert submitter and submitter != scalar(jobs.owner, "SELECT SUSER_SNAME()"), "recorded as the caller, not sa"
    assert scalar(jobs.owner, "SELECT COUNT(*) FROM dbo.bulk_ac WHERE embedding IS NULL") == 0


def test_a_job_on_a_cyrillic_varchar_key_in_a_latin1_database(jobs: Deployment) -> None:
    make_cyrillic_keyed(jobs.owner, "dbo.cyr_bulk")
    rc, job, error = submit(jobs.owner, "dbo.cyr_bulk")
    assert rc == 0, error
    done = wait(jobs.owner, job)
    assert (done.state, done.rows_done, done.rows_failed) == ("succeeded", 4, 0), done.last_error
    assert scalar(jobs.owner, "SELECT COUNT(*) FROM dbo.cyr_bulk WHERE embedding IS NULL") == 0
    _, again, _ = submit(jobs.owner, "dbo.cyr_bulk")
    assert wait(jobs.owner, again).rows_done == 0, "every key matched its state row: nothing stays pending"


def test_filters_that_are_not_one_boolean_expression_are_refused(jobs: Deployment) -> None:
    make_docs(jobs.owner, "dbo.guarded", ["keep me"])
    for where in (
        "N'1=1) DELETE FROM dbo.guarded WHERE (1=1'",
        "N'id > 0; DROP TABLE dbo.guarded'",
        "N'id IN (SELECT id FROM dbo.guarded)'",
    ):
        rc, job, error = submit(jobs.owner, "dbo.guarded", where=where)
        assert rc == 400 and job is None and "where" in json.loads(error)["message"]
    assert scalar(jobs.owner, "SELECT COUNT(*) FROM dbo.guarded") == 1
    rc, job, error = submit(jobs.owner, "dbo.guarded", where="N'id = 1'")
    assert rc == 0, error
    assert wait(jobs.owner, job).rows_done == 1


def test_cancel_a_running_job(jobs: Deployment) -> None:
    make_docs(jobs.owner, "dbo.big", [f"{p} ({i})" for i, p in enumerate(paragraphs() * 3)])
    rc, job, _ = submit(jobs.owner, "dbo.big")
    assert rc == 0
    time.sleep(5)
    assert scalar(jobs.owner, "DECLARE @rc int; EXEC @rc = sqlembed.cancel_job @job_id = ?; SELECT @rc", job) == 0
    assert wait(jobs.owner, job).state == "cancelled"


def test_dimensions_below_the_models_on_the_spark_path(
    deployment: Callable[..., Deployment], job_service: tuple[ServerThread, str]
) -> None:
    srv, name = job_service
    # A deployment with SQLEMBED_DIMENSIONS=128 and a VECTOR(128) column; the bulk path takes the
    # column's size (and would refuse a different one), embed_rows the deployment's.
    d = deployment("dims", name=name + "_dims", srv=srv, SQLEMBED_DIMENSIONS="128")
    texts = paragraphs(40)
    make_docs(d.owner, "dbo.small", list(texts), dims=128)
    from sqlembed.db.targets import TableSpec
    from sqlembed.spark.job import BulkJob, run
    from tests.support.engines import engine_settings

    spark = srv.spark_factory()
    result = run(
        spark,
        BulkJob(
            TableSpec(d.url(), "dbo.small", "id", "body", "embedding"),
            engine_settings(srv.settings.model_dir, threads=1),
            batch_rows=16,
        ),
    )
    assert (result.rows_embedded, result.dimensions) == (40, 128)
    got = stored(d.owner, "dbo.small")
    ref = service_vectors(srv, texts, dimensions=128)
    assert min(float(got[i + 1] @ ref[i]) for i in range(40)) >= 0.9999
    assert np.allclose([np.linalg.norm(v) for v in got.values()], 1.0, atol=1e-4)
    assert embed_rows(d.owner, "dbo.small").rows_embedded == 0, "embed_rows (SQLEMBED_DIMENSIONS=128) agrees"


def long_documents(n: int) -> list[str]:
    ps = paragraphs(min_chars=200)
    return ["\n\n".join(ps[(i * 3 + j) % len(ps)] for j in range(3)) + " Naïve café 😀." for i in range(n)]


def test_a_chunk_job_from_t_sql_then_search_chunks_returns_parents_and_passages(
    jobs: Deployment, job_service: tuple[ServerThread, str]
) -> None:
    srv, _ = job_service
    texts = long_documents(20)
    make_docs(jobs.owner, "dbo.longdocs", list(texts))
    user = new_user(jobs, "chunkuser", "GRANT SELECT ON dbo.longdocs TO {user}")
    name = user.name
    with user.connect() as conn:
        # The chunk table does not exist and the user may not create tables: refused in their name.
        rc, job, error = submit(conn, "dbo.longdocs", chunk_table="N'dbo.longdocs_chunks'", chunk_tokens="64")
        assert rc == 403 and job is None and "CREATE TABLE" in json.loads(error)["message"]
        rc, _, error = submit(conn, "dbo.longdocs", chunk_table="N'dbo.longdocs_chunks'", chunk_tokens="64",
                              chunk_overlap="40")
        assert rc == 400 and "chunk_overlap" in json.loads(error)["message"]
    jobs.owner.execute(f"GRANT CREATE TABLE TO [{name}]; GRANT ALTER ON SCHEMA::dbo TO [{name}]")
    with user.connect() as conn:
        rc, job, error = submit(conn, "dbo.longdocs", chunk_table="N'dbo.longdocs_chunks'", chunk_tokens="64",
                                chunk_overlap="8")
        assert rc == 0, error
        done = wait(conn, job)
        assert done.state == "succeeded" and done.rows_done == 20, done.last_error
    rows = jobs.owner.execute(
        "SELECT c.id, c.chunk_no, SUBSTRING(d.body, c.chunk_offset, c.chunk_length) AS passage, "
        "CAST(c.embedding AS nvarchar(max)) AS v FROM dbo.longdocs_chunks AS c JOIN dbo.longdocs AS d ON d.id = c.id "
        "ORDER BY c.id, c.chunk_no").fetchall()
    per_parent: dict[int, list[str]] = {}
    for r in rows:
        per_parent.setdefault(r.id, []).append(r.passage)
    assert sorted(per_parent) == list(range(1, 21)) and all(len(v) > 2 for v in per_parent.values())
    # SQL Server's SUBSTRING counts UTF-16 code units: the offsets were converted (the emoji is two).
    ref = service_vectors(srv, [r.passage for r in rows])
    got = np.asarray([json.loads(r.v) for r in rows], dtype=np.float32)
    assert float(np.min(np.sum(got * ref, axis=1))) >= 0.9999
    assert per_parent[20][-1].endswith("😀.")

    jobs.owner.execute(f"GRANT SELECT ON dbo.longdocs_chunks TO [{name}]")
    probe = per_parent[7][1]
    with user.connect() as conn:
        hits = conn.execute(
            "DECLARE @e nvarchar(max); EXEC sqlembed.search_chunks @query = ?, @chunk_table = N'dbo.longdocs_chunks', "
            "@key_column = N'id', @vector_column = N'embedding', @top = 5, @parent_table = N'dbo.longdocs', "
            "@text_column = N'body', @error = @e OUTPUT", probe).fetchall()
    assert len(hits) == 5 and len({h.id for h in hits}) == 5, "one row per parent"
    assert (hits[0].id, hits[0].chunk_no, hits[0].passage) == (7, 2, probe)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)

    # A changed parent's chunks are replaced, a deleted parent's go (the hash scan path: no Change Tracking).
    jobs.owner.execute("UPDATE dbo.longdocs SET body = N'One short sentence now.' WHERE id = 3; "
                       "DELETE FROM dbo.longdocs WHERE id = 4")
    with user.connect() as conn:
        rc, job, error = submit(conn, "dbo.longdocs", chunk_table="N'dbo.longdocs_chunks'", chunk_tokens="64",
                                chunk_overlap="8")
        assert rc == 0, error
        assert wait(conn, job).rows_done == 1
    counts = dict(jobs.owner.execute("SELECT id, COUNT(*) FROM dbo.longdocs_chunks GROUP BY id").fetchall())
    assert counts[3] == 1 and 4 not in counts and len(counts) == 19


def test_change_tracking_sync_reads_only_changed_rows(jobs: Deployment, job_service: tuple[ServerThread, str]) -> None:
    from sqlembed.db.targets import TableSpec
    from sqlembed.errors import InvalidInput
    from sqlembed.spark.job import BulkJob, run
    from tests.support.engines import engine_settings

    srv, _ = job_service
    texts = paragraphs(200)
    make_docs(jobs.owner, "dbo.tracked", list(texts))

    def job(sync: str = "changes") -> BulkJob:
        return BulkJob(TableSpec(jobs.url(), "dbo.tracked", "id", "body", "embedding"),
                       engine_settings(srv.settings.model_dir, threads=1), batch_rows=32, sync=sync)  # type: ignore[arg-type]

    spark = srv.spark_factory()
    with pytest.raises(InvalidInput, match="ENABLE CHANGE_TRACKING"):
        run(spark, job())
    # The two statements sql/README.md gives a DBA (TRACK_COLUMNS_UPDATED: our own vector writes
    # to the same table are then not changes of the text).
    jobs.owner.execute("IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID()) "
                       "ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)")
    jobs.owner.execute("ALTER TABLE dbo.tracked ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = ON)")
    first = run(spark, job())
    assert (first.rows_embedded, first.mode) == (200, "changes")
    jobs.owner.execute("UPDATE dbo.tracked SET body = body + N' (edited)' WHERE id IN (5, 50, 150); "
                       "DELETE FROM dbo.tracked WHERE id = 7; INSERT dbo.tracked (id, body) VALUES (1000, N'new row')")
    second = run(spark, job())
    assert (second.mode, second.rows_read, second.rows_embedded, second.rows_deleted) == ("changes", 4, 4, 1)
    assert scalar(jobs.owner, "SELECT COUNT(*) FROM sqlembed.embedding_state WHERE source_table = N'[dbo].[tracked]' "
                              "AND row_key = N'7'") == 0
    third = run(spark, job())
    assert (third.rows_read, third.rows_embedded) == (0, 0), "the job's own vector writes are not changes"
    got = stored(jobs.owner, "dbo.tracked")
    edited = scalar(jobs.owner, "SELECT body FROM dbo.tracked WHERE id = 50")
    assert float(got[50] @ service_vectors(srv, [edited])[0]) >= 0.9999
    assert run(spark, job("hash")).rows_embedded == 0, "a full comparison agrees"


def last_result(conn: Any, sql: str) -> list[Any]:
    """The rows of the batch's last result set (a dry run answers rows before the batch's SELECT)."""
    cur = conn.execute(sql)
    rows = cur.fetchall() if cur.description else []
    while cur.nextset():
        if cur.description:
            rows = cur.fetchall()
    return rows


def test_dry_run_from_t_sql_matches_the_job_that_follows_and_writes_nothing(
        jobs: Deployment, base_settings: Settings) -> None:
    from sqlembed.engine.opener import open_embedder

    texts = [*paragraphs(240, min_chars=40), None]
    make_docs(jobs.owner, "dbo.dry", texts)
    user = new_user(jobs, "dryuser", "GRANT SELECT, UPDATE ON dbo.dry TO {user}")
    jobs_before = scalar(jobs.owner, "SELECT COUNT(*) FROM sqlembed.jobs")
    with user.connect() as conn:
        rows = conn.execute(
            "EXEC sqlembed.submit_job @database = N'app', @table = N'dbo.dry', @key_column = N'id', "
            "@text_column = N'body', @vector_column = N'embedding', @dry_run = 1").fetchall()
        # The same answer as JSON for T-SQL callers, with the return code and no error.
        out = last_result(
            conn, "DECLARE @rc int, @e nvarchar(max), @est nvarchar(max); EXEC @rc = sqlembed.submit_job "
            "@database = N'app', @table = N'dbo.dry', @key_column = N'id', @text_column = N'body', "
            "@vector_column = N'embedding', @error = @e OUTPUT, @dry_run = 1, @estimate = @est OUTPUT; "
            "SELECT @rc AS rc, @e AS error, @est AS estimate")
        # @dry_run = NULL must not read as 0 (a real job).
        null_rc = scalar(conn, "DECLARE @rc int; EXEC @rc = sqlembed.submit_job @database = N'app', "
                               "@table = N'dbo.dry', @key_column = N'id', @text_column = N'body', "
                               "@vector_column = N'embedding', @dry_run = NULL; SELECT @rc")
    assert null_rc == 400
    # What SSMS shows: one row per worker count, with the job's figures on each.
    assert [r.workers for r in rows] == [1, 2, 4, 8]
    first = rows[0]
    assert first.rows_pending == 241  # every row: none has a vector yet (the NULL text would fail)
    assert first.text_bytes == scalar(jobs.owner, "SELECT SUM(CAST(DATALENGTH(CAST(body AS nvarchar(max))) AS bigint)) "
                                                  "FROM dbo.dry")
    emb = open_embedder(base_settings.engine_settings())
    try:
        prompt = "passage" if emb.manifest.prompt_for("passage") is not None else None
        truth = sum(len(ids) for ids in emb.tokenize([t for t in texts if t], input_type=prompt))
    finally:
        emb.close()
    assert abs(first.tokens_estimate - truth) <= 0.2 * truth
    assert first.rate_source.startswith("measured") and first.rows_per_s_per_worker > 0
    assert first.estimated_seconds == pytest.approx(241 / first.rows_per_s_per_worker, abs=0.1)
    assert rows[3].estimated_seconds == pytest.approx(first.estimated_seconds / 8, abs=0.1)
    assert out[-1].rc == 0 and out[-1].error is None, out[-1].error
    assert json.loads(out[-1].estimate)["rows_pending"] == 241
    # Nothing written, no job recorded, here or on the service.
    assert scalar(jobs.owner, "SELECT COUNT(*) FROM dbo.dry WHERE embedding IS NOT NULL") == 0
    assert scalar(jobs.owner, "SELECT COUNT(*) FROM sqlembed.jobs") == jobs_before
    assert scalar(jobs.owner, "SELECT COUNT(*) FROM sqlembed.embedding_state WHERE source_table = N'[dbo].[dry]'") == 0
    # The job that follows reads exactly the rows the dry run counted.
    with user.connect() as conn:
        rc, job, error = submit(conn, "dbo.dry")
        assert rc == 0 and job, error
        done = wait(conn, job)
    assert done.rows_total == first.rows_pending and done.rows_done == 240
    # Inside a transaction the dry run is refused (the service's count would wait behind its locks).
    conn = user.connect(autocommit=False)
    try:
        conn.execute("UPDATE dbo.dry SET body = body + N'!' WHERE id = 1")
        rc = last_result(conn, "DECLARE @rc int, @e nvarchar(max); EXEC @rc = sqlembed.submit_job "
                               "@database = N'app', @table = N'dbo.dry', @key_column = N'id', @text_column = N'body', "
                               "@vector_column = N'embedding', @error = @e OUTPUT, @dry_run = 1; SELECT @rc")[-1][0]
        assert rc == 409
        conn.rollback()
    finally:
        conn.close()
    # The same permission checks as a submission: no SELECT on the text, no dry run.
    nosel = new_user(jobs, "drynosel", "GRANT SELECT (id) ON dbo.dry TO {user}")
    with nosel.connect() as conn:
        rc = last_result(conn, "DECLARE @rc int, @e nvarchar(max); EXEC @rc = sqlembed.submit_job "
                               "@database = N'app', @table = N'dbo.dry', @key_column = N'id', @text_column = N'body', "
                               "@vector_column = N'embedding', @error = @e OUTPUT, @dry_run = 1; SELECT @rc")[-1][0]
    assert rc == 403
    # A masked text column: the service would read it unmasked, so a caller without UNMASK may
    # neither embed it nor have it measured.
    jobs.owner.execute("ALTER TABLE dbo.dry ALTER COLUMN body ADD MASKED WITH (FUNCTION = 'default()')")
    masked_rc = ("DECLARE @rc int, @e nvarchar(max); EXEC @rc = sqlembed.submit_job @database = N'app', "
                 "@table = N'dbo.dry', @key_column = N'id', @text_column = N'body', "
                 "@vector_column = N'embedding', @error = @e OUTPUT, @dry_run = 1; SELECT @rc")
    with user.connect() as conn:
        assert last_result(conn, masked_rc)[-1][0] == 403
    jobs.owner.execute(f"GRANT UNMASK ON dbo.dry(body) TO {user.name}")
    with user.connect() as conn:
        assert last_result(conn, masked_rc)[-1][0] == 0
