"""The deploy orchestration over a DB-API connection: order, journal, refusal, error location.

The connection here records what deploy sends and answers only the journal query; it checks the
orchestration, not T-SQL semantics (tests/mssql runs the same deploy against SQL Server 2025).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sqlembed.db.deploy import APPLOCK, deploy
from sqlembed.db.sqlfiles import load
from sqlembed.db.variables import resolve
from sqlembed.errors import DeployError

VALUES = resolve({"SQLEMBED_URL": "https://embed.example.internal:8888", "SQLEMBED_API_KEY": "super-secret-key"})


class RecordingConnection:
    def __init__(self, applied: dict[str, str] | None = None, fail_on: str | None = None) -> None:
        self.applied = applied or {}
        self.fail_on = fail_on
        self.sent: list[str] = []
        self._rows: list[tuple[Any, ...]] = []

    def cursor(self) -> RecordingConnection:
        return self

    def execute(self, sql: str, *params: Any) -> None:
        self.sent.append(sql)
        if self.fail_on and self.fail_on in sql:
            raise RuntimeError("[42000] Incorrect syntax near 'x'. (key super-secret-key in statement)")
        if sql.startswith("DECLARE @r int; EXEC @r = sys.sp_getapplock"):
            assert params == (APPLOCK,)
            self._rows = [(0,)]
        elif "SELECT name, checksum FROM sqlembed.migrations" in sql:
            self._rows = list(self.applied.items())
        else:
            self._rows = []

    def nextset(self) -> bool:
        return False

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None


def test_first_deploy_order_and_journal() -> None:
    files = load()
    conn = RecordingConnection()
    report = deploy(conn, files, VALUES, version="1.2.3")
    assert report.applied_migrations == [f.name for f in files if f.kind == "migration"]
    assert report.objects == [f.name for f in files if f.kind == "object"]
    sent = "\n".join(conn.sent)
    assert conn.sent[0].startswith("DECLARE @r int; EXEC @r = sys.sp_getapplock")
    assert "sp_releaseapplock" in conn.sent[-1]
    assert sent.index("CREATE TABLE sqlembed.migrations") < sent.index("CREATE TABLE sqlembed.jobs") \
        < sent.index("CREATE OR ALTER FUNCTION sqlembed.config") < sent.index("CREATE ROLE sqlembed_user")
    # Each migration is one batch that commits with its journal row (the same block db render writes).
    blocks = [s for s in conn.sent if "INSERT sqlembed.migrations" in s]
    assert len(blocks) == len(report.applied_migrations)
    for block in blocks:
        assert block.startswith("SET XACT_ABORT ON;") and "BEGIN TRANSACTION;" in block \
            and block.rstrip().endswith("COMMIT TRANSACTION;\nEND;")
    assert "$(" not in sent.replace("$(SQLEMBED", "")  # variables substituted


def test_applied_migrations_are_skipped_and_edits_refused() -> None:
    files = load()
    migrations = [f for f in files if f.kind == "migration"]
    applied = {f.name: f.checksum for f in migrations}
    report = deploy(RecordingConnection(applied), files, VALUES, version="1")
    assert report.applied_migrations == [] and report.skipped_migrations == list(applied)

    edited = [replace(f, text=f.text + "\n-- edited\n") if f.name == migrations[0].name else f for f in files]
    conn = RecordingConnection(applied)
    with pytest.raises(DeployError, match="applied with different content") as info:
        deploy(conn, edited, VALUES, version="1")
    assert info.value.file == migrations[0].name
    assert not any("CREATE OR ALTER" in s for s in conn.sent), "nothing after the refusal"
    assert "sp_releaseapplock" in conn.sent[-1], "the lock is released on failure"


def test_failing_batch_names_file_and_line_and_hides_the_secret() -> None:
    files = load()
    conn = RecordingConnection(fail_on="CREATE OR ALTER PROCEDURE sqlembed.embed_text")
    with pytest.raises(DeployError) as info:
        deploy(conn, files, VALUES, version="1")
    f = next(f for f in files if f.name == "050_embed_text.sql")
    line = next(b.line for b in f.batches() if "PROCEDURE sqlembed.embed_text" in b.text)
    assert (info.value.file, info.value.line) == ("050_embed_text.sql", line)
    assert str(info.value).startswith(f"050_embed_text.sql:{line}: ")
    assert "super-secret-key" not in str(info.value)


def test_failed_migration_rolls_back() -> None:
    conn = RecordingConnection(fail_on="CREATE TABLE sqlembed.embedding_state")
    with pytest.raises(DeployError, match=r"020_embedding_state\.sql"):
        deploy(conn, load(), VALUES, version="1")
    assert conn.sent[-2] == "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;"
