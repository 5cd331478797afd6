"""Against a real SQL Server 2025 (marker mssql): the permission model and the callers' transactions
of issue 22, as a contained member of sqlembed_user (not sa) meets them.

- The role cannot call sp_invoke_external_rest_endpoint, use the credential, run sqlembed.invoke or
  read sqlembed's tables, so it cannot reach the service with the key except through the
  procedures; it can still run every procedure (test_sqlserver2025.py) and search.
- Two vector columns of one table keep their own state.
- search and search_chunks inside a caller's XACT_ABORT ON transaction survive a service outage;
  INSERT ... EXEC sqlembed.search_chunks works (no nested INSERT ... EXEC).
- A Cyrillic-collated varchar key in a Latin1 database is embedded and then stays current.
- A run lease left behind expires; another caller's job is invisible.
- The workflow's restart path: the server answers on the port the workflow read after the restart,
  and it trusts the test CA it loaded at that restart.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from sqlembed.benchmark.corpus import paragraphs
from tests.mssql.conftest import AppUser, Deployment, Faults, make_cyrillic_keyed, make_docs, new_user, scalar
from tests.mssql.test_sqlserver2025 import embed_rows, tran_state

pytestmark = [pytest.mark.mssql, pytest.mark.slow]


def error_number(conn: Any, sql: str) -> int:
    """The SQL Server error number a statement raises (0: none), read inside T-SQL so the driver's
    wording does not matter."""
    return int(scalar(conn, "DECLARE @n int = 0; BEGIN TRY EXEC sys.sp_executesql ?; END TRY "
                            "BEGIN CATCH SET @n = ERROR_NUMBER(); END CATCH; SELECT @n", sql))


def test_the_role_holds_no_outbound_right_and_reads_no_sqlembed_table(database: Deployment,
                                                                      app_user: AppUser) -> None:
    cred = database.values["SQLEMBED_CREDENTIAL"]
    held = {(r[0], r[1]) for r in database.owner.execute(
        "SELECT p.permission_name, p.class_desc FROM sys.database_permissions AS p "
        "WHERE p.grantee_principal_id = DATABASE_PRINCIPAL_ID(N'sqlembed_user') AND p.state IN ('G', 'W')").fetchall()}
    assert ("EXECUTE ANY EXTERNAL ENDPOINT", "DATABASE") not in held
    assert not any("CREDENTIAL" in cls for _, cls in held), held
    invoker = {(r[0], r[1]) for r in database.owner.execute(
        "SELECT p.permission_name, p.class_desc FROM sys.database_permissions AS p "
        "WHERE p.grantee_principal_id = DATABASE_PRINCIPAL_ID(N'sqlembed_invoker') AND p.state = 'G'").fetchall()}
    # Exactly the two rights invoke needs (CONNECT comes with every user).
    assert {(name, "CREDENTIAL" if "CREDENTIAL" in cls else cls) for name, cls in invoker
            if (name, cls) != ("CONNECT", "DATABASE")} == {("EXECUTE ANY EXTERNAL ENDPOINT", "DATABASE"),
                                                           ("REFERENCES", "CREDENTIAL")}
    with app_user.connect() as conn:
        url = database.values["SQLEMBED_URL"]
        # Directly, with and without the credential: refused before any request leaves.
        assert error_number(conn, f"DECLARE @r nvarchar(max); EXEC sys.sp_invoke_external_rest_endpoint "
                                  f"@url = N'{url}/readyz', @method = N'GET', @response = @r OUTPUT;") != 0
        assert error_number(conn, f"DECLARE @r nvarchar(max); EXEC sys.sp_invoke_external_rest_endpoint "
                                  f"@url = N'{url}/v1/jobs', @method = N'POST', @payload = N'{{}}', "
                                  f"@credential = N'{cred}', @response = @r OUTPUT;") != 0
        # The one procedure that holds the rights is not callable: no job posted with the key.
        assert error_number(conn, "DECLARE @r nvarchar(max); EXEC sqlembed.invoke @path = N'/v1/jobs', "
                                  "@payload = N'{}', @response = @r OUTPUT;") == 229
        for table in ("sqlembed.embedding_state", "sqlembed.jobs", "sqlembed.run_leases"):
            assert error_number(conn, f"SELECT TOP (1) 1 FROM {table};") == 229, table
        # Still: the procedures that call the service work for the member.
        rc = scalar(conn, "DECLARE @v VECTOR(384), @rc int; EXEC @rc = sqlembed.embed_text @text = N'x', "
                          "@embedding = @v OUTPUT; SELECT @rc")
        assert rc == 0


def test_ai_generate_embeddings_for_a_member_with_execute_on_the_model_only(app_user: AppUser) -> None:
    """Learn's CREATE EXTERNAL MODEL page documents one right for the caller, EXECUTE on the model,
    and that is all the role holds (the model carries the credential). If this fails, the server
    wants more than documented: sql/README.md's permission model says what the opt-in is."""
    with app_user.connect() as conn:
        ai = scalar(conn, "SELECT CAST(AI_GENERATE_EMBEDDINGS(N'x' USE MODEL sqlembed) AS nvarchar(max))")
        assert len(json.loads(ai)) == 384
        step = next(r for r in conn.execute("EXEC sqlembed.self_test").fetchall() if r.step == 6)
        assert step.result == "ok", step.detail


def test_invoke_accepts_only_the_services_own_paths(database: Deployment) -> None:
    for path in ("@evil.example/x", "/../x", "/x?y=1", "//evil.example", "/a.b"):
        rc = scalar(database.owner, "DECLARE @rc int, @r nvarchar(max), @e nvarchar(max); "
                                    "EXEC @rc = sqlembed.invoke @path = ?, @method = N'GET', @response = @r OUTPUT, "
                                    "@error = @e OUTPUT; SELECT @rc", path)
        assert rc == 400, path


def test_two_vector_columns_of_one_table_keep_their_own_state(database: Deployment, app_user: AppUser) -> None:
    texts = paragraphs(40)
    database.owner.execute(
        "DROP TABLE IF EXISTS dbo.two_vecs; CREATE TABLE dbo.two_vecs (id int NOT NULL PRIMARY KEY, "
        "title nvarchar(400) NULL, body nvarchar(max) NULL, title_vec VECTOR(384) NULL, body_vec VECTOR(384) NULL)")
    database.owner.cursor().executemany("INSERT dbo.two_vecs (id, title, body) VALUES (?, ?, ?)",
                                        [(i + 1, t[:60], t) for i, t in enumerate(texts)])
    app_user.grant("dbo.two_vecs", "SELECT", "UPDATE")

    def run(conn: Any, text: str, vector: str) -> Any:
        return conn.execute(
            "EXEC sqlembed.embed_rows @table = N'dbo.two_vecs', @key_column = N'id', "
            f"@text_column = N'{text}', @vector_column = N'{vector}'").fetchone()

    with app_user.connect() as conn:
        assert run(conn, "title", "title_vec").rows_embedded == 40
        assert run(conn, "body", "body_vec").rows_embedded == 40
        # No ping-pong: each destination is current.
        assert run(conn, "title", "title_vec").rows_embedded == 0
        assert run(conn, "body", "body_vec").rows_embedded == 0
        database.owner.execute("UPDATE dbo.two_vecs SET title = N'a new title' WHERE id = 7")
        assert run(conn, "title", "title_vec").rows_embedded == 1
        assert run(conn, "body", "body_vec").rows_embedded == 0
    dests = {r[0] for r in database.owner.execute(
        "SELECT DISTINCT destination FROM sqlembed.embedding_state WHERE source_table = N'[dbo].[two_vecs]'")}
    assert dests == {"[dbo].[two_vecs].[title_vec]", "[dbo].[two_vecs].[body_vec]"}


def test_search_inside_an_xact_abort_transaction_survives_an_outage(database: Deployment, app_user: AppUser,
                                                                     faults: Faults) -> None:
    make_docs(database.owner, "dbo.xa_docs", paragraphs(20))
    database.owner.execute("DROP TABLE IF EXISTS dbo.xa_audit; CREATE TABLE dbo.xa_audit (note nvarchar(100))")
    app_user.grant("dbo.xa_docs", "SELECT", "UPDATE")
    app_user.grant("dbo.xa_audit", "INSERT", "SELECT")
    with app_user.connect() as conn:
        assert embed_rows(conn, "dbo.xa_docs").rows_embedded == 20
    try:
        faults.down()
        with app_user.connect() as conn:
            conn.execute("SET XACT_ABORT ON; BEGIN TRANSACTION; INSERT dbo.xa_audit VALUES (N'kept');")
            row = conn.execute(
                "DECLARE @rc int, @e nvarchar(max); EXEC @rc = sqlembed.search @query = N'anything', "
                "@table = N'dbo.xa_docs', @key_column = N'id', @vector_column = N'embedding', @error = @e OUTPUT; "
                "SELECT @rc AS rc, @e AS e").fetchone()
            assert row.rc != 0 and json.loads(row.e)["code"], row
            assert tran_state(conn) == (1, 1), "the caller's transaction is open and committable"
            conn.execute("COMMIT TRANSACTION;")
    finally:
        faults.clear()
    assert scalar(database.owner, "SELECT COUNT(*) FROM dbo.xa_audit WHERE note = N'kept'") == 1


def test_insert_exec_of_search_chunks_through_a_vector_index(database: Deployment, app_user: AppUser) -> None:
    texts = paragraphs(150)
    database.owner.execute(
        "DROP TABLE IF EXISTS dbo.ie_chunks; CREATE TABLE dbo.ie_chunks (chunk_id int IDENTITY(1, 1) NOT NULL "
        "CONSTRAINT PK_ie_chunks PRIMARY KEY CLUSTERED, id int NOT NULL, chunk_no int NOT NULL, chunk_offset int NOT "
        "NULL, chunk_length int NOT NULL, body nvarchar(max) NULL, embedding VECTOR(384) NULL)")
    database.owner.cursor().executemany(
        "INSERT dbo.ie_chunks (id, chunk_no, chunk_offset, chunk_length, body) VALUES (?, ?, 1, ?, ?)",
        [(i // 3 + 1, i % 3 + 1, len(t), t) for i, t in enumerate(texts)])
    row = database.owner.execute(
        "EXEC sqlembed.embed_rows @table = N'dbo.ie_chunks', @key_column = N'chunk_id', @text_column = N'body', "
        "@vector_column = N'embedding'").fetchone()
    assert row.rows_embedded == 150, row.error
    assert scalar(database.owner, "DECLARE @rc int; EXEC @rc = sqlembed.create_vector_index @table = N'dbo.ie_chunks', "
                                  "@vector_column = N'embedding'; SELECT @rc") == 0
    app_user.grant("dbo.ie_chunks", "SELECT")
    try:
        with app_user.connect() as conn:
            got = conn.execute(
                "CREATE TABLE #hits (id int, chunk_no int, chunk_offset int, chunk_length int, distance float, "
                "passage nvarchar(max)); DECLARE @rc int; "
                "INSERT #hits EXEC @rc = sqlembed.search_chunks @query = ?, @chunk_table = N'dbo.ie_chunks', "
                "@key_column = N'id', @vector_column = N'embedding', @top = 3; "
                "SELECT @rc AS rc, (SELECT COUNT(*) FROM #hits) AS n, (SELECT TOP (1) id FROM #hits ORDER BY distance) "
                "AS best", texts[30]).fetchone()
            assert (got.rc, got.n) == (0, 3) and got.best == 11
    finally:
        database.owner.execute("DROP INDEX IF EXISTS vix_ie_chunks_embedding ON dbo.ie_chunks")


def test_a_cyrillic_varchar_key_in_a_latin1_database(database: Deployment) -> None:
    assert "Latin1" in scalar(database.owner, "SELECT CAST(DATABASEPROPERTYEX(DB_NAME(), 'Collation') AS sysname)")
    make_cyrillic_keyed(database.owner, "dbo.cyr")
    assert embed_rows(database.owner, "dbo.cyr").rows_embedded == 4
    assert scalar(database.owner, "SELECT COUNT(*) FROM dbo.cyr WHERE embedding IS NULL") == 0
    again = embed_rows(database.owner, "dbo.cyr")
    assert (again.rows_embedded, again.rows_skipped) == (0, 0), "nothing pending, nothing vanished"


def test_a_run_lease_left_behind_expires_and_a_live_one_refuses(database: Deployment, app_user: AppUser) -> None:
    make_docs(database.owner, "dbo.leased", ["a", "b"])
    app_user.grant("dbo.leased", "SELECT", "UPDATE")
    dest = "[dbo].[leased].[embedding]"
    database.owner.execute("DELETE sqlembed.run_leases WHERE destination = ?; INSERT sqlembed.run_leases "
                           "(destination, session_id, token, expires_at) VALUES (?, -1, NEWID(), "
                           "DATEADD(minute, 5, SYSUTCDATETIME()))", dest, dest)
    with app_user.connect() as conn:
        row = embed_rows(conn, "dbo.leased")
        assert json.loads(row.error)["code"] == 409 and row.requests == 0
        assert tran_state(conn) == (0, 0)
    # A client timeout's leftover: expired, so the next caller takes it over.
    database.owner.execute("UPDATE sqlembed.run_leases SET expires_at = DATEADD(second, -1, SYSUTCDATETIME()) "
                           "WHERE destination = ?", dest)
    with app_user.connect() as conn:
        assert embed_rows(conn, "dbo.leased").rows_embedded == 2
    assert scalar(database.owner, "SELECT COUNT(*) FROM sqlembed.run_leases WHERE destination = ?", dest) == 0


def test_another_callers_job_is_invisible(database: Deployment, app_user: AppUser) -> None:
    database.owner.execute("DELETE sqlembed.jobs WHERE job_id = N'someone-elses'; INSERT sqlembed.jobs "
                           "(job_id, source_table, state, submitted_by) VALUES (N'someone-elses', N'dbo.secret', "
                           "N'running', N'another_login')")
    with app_user.connect() as conn:
        for proc in ("job_status", "cancel_job"):
            row = conn.execute(f"DECLARE @rc int, @e nvarchar(max); EXEC @rc = sqlembed.{proc} "
                               "@job_id = N'someone-elses', @error = @e OUTPUT; SELECT @rc AS rc, @e AS e").fetchone()
            assert row.rc == 404, (proc, row.e)
        assert scalar(conn, "SELECT COUNT(*) FROM sqlembed.my_jobs WHERE job_id = N'someone-elses'") == 0
    assert scalar(database.owner, "SELECT COUNT(*) FROM sqlembed.my_jobs WHERE job_id = N'someone-elses'") == 1


def test_submit_and_cancel_refuse_inside_a_transaction_and_touch_nothing(database: Deployment) -> None:
    make_docs(database.owner, "dbo.sj_tx", ["one"])
    user = new_user(database, "sjtx", "GRANT SELECT, UPDATE ON dbo.sj_tx TO {user}")
    with user.connect(autocommit=False) as conn:  # the driver's implicit transactions
        conn.execute("SELECT 1").fetchone()  # opens the client's transaction
        row = conn.execute(
            "DECLARE @rc int, @j nvarchar(64), @e nvarchar(max); EXEC @rc = sqlembed.submit_job @database = N'app', "
            "@table = N'dbo.sj_tx', @key_column = N'id', @text_column = N'body', @vector_column = N'embedding', "
            "@job_id = @j OUTPUT, @error = @e OUTPUT; SELECT @rc AS rc, @j AS j").fetchone()
        assert row.rc == 409 and row.j is None
        row = conn.execute("DECLARE @rc int; EXEC @rc = sqlembed.cancel_job @job_id = N'x'; "
                           "SELECT @rc AS rc").fetchone()
        assert row.rc == 409
        assert tran_state(conn) == (1, 1)
        conn.rollback()


@pytest.mark.skipif(not os.environ.get("MSSQL_PORT"), reason="only in the mssql workflow, which restarts the "
                    "SQL Server container to load the test CA and records the port it reads after the restart")
def test_the_workflows_restart_path(database: Deployment) -> None:
    port = os.environ["MSSQL_PORT"]
    assert f",{port};" in os.environ["SQLEMBED_TEST_MSSQL_DSN"], "the DSN uses the port read after the restart"
    # The CA mounted before the restart is trusted: an HTTPS call to the service succeeds.
    steps = {r.name: r.result for r in database.owner.execute("EXEC sqlembed.self_test").fetchall()}
    assert steps["service answers over HTTPS"] == "ok", steps
