"""The rendered script through sqlcmd (marker mssql): `sqlembed db render` then `sqlcmd -b -I -v
SQLEMBED_API_KEY=...` deploys a working database; a migration that fails half-way leaves neither
its objects nor its journal row, and a rerun after the fix applies it whole."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sqlembed.db.connect import parse_odbc
from sqlembed.db.sqlfiles import sql_root
from tests.mssql.conftest import API_KEY, SERVICE_HOST, connect, scalar
from tests.support.server import ServerThread

pytestmark = [pytest.mark.mssql, pytest.mark.slow]

SQLCMD = shutil.which("sqlcmd") or ("/opt/mssql-tools18/bin/sqlcmd" if Path("/opt/mssql-tools18/bin/sqlcmd").exists()
                                    else None)


def _render(sql_dir: Path, out: Path, service: ServerThread) -> None:
    env = {"PATH": "/usr/bin:/bin", "SQLEMBED_SQL_DIR": str(sql_dir)}
    p = subprocess.run([sys.executable, "-m", "sqlembed", "db", "render", "--var",
                        f"SQLEMBED_URL=https://{SERVICE_HOST}:{service.port}", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr


def _sqlcmd(dsn: str, database: str, script: Path) -> subprocess.CompletedProcess[str]:
    assert SQLCMD is not None
    parts = {k.lower(): v for k, v in parse_odbc(dsn)}
    cmd = [SQLCMD, "-b", "-I", "-C", "-S", parts["server"], "-U", parts.get("uid", "sa"), "-d", database,
           "-i", str(script), "-v", f"SQLEMBED_API_KEY={API_KEY}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "SQLCMDPASSWORD": parts.get("pwd", "")})


@pytest.mark.skipif(SQLCMD is None, reason="needs sqlcmd (mssql-tools18 or go-sqlcmd) on the PATH")
def test_rendered_script_deploys_and_survives_a_failure_half_way(admin: Any, mssql_dsn: str, service: ServerThread,
                                                               tmp_path: Path) -> None:
    name = "sqlembed_render_" + tmp_path.name[-8:].replace("-", "_")
    admin.execute(f"CREATE DATABASE [{name}]")
    try:
        with connect(mssql_dsn, database=name) as owner:
            owner.execute("CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Mk1!render-" + tmp_path.name[-6:] + "'")
        sql_dir = tmp_path / "sql"
        shutil.copytree(sql_root(), sql_dir)
        script = tmp_path / "sqlembed.sql"
        _render(sql_dir, script, service)
        first = _sqlcmd(mssql_dsn, name, script)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        assert _sqlcmd(mssql_dsn, name, script).returncode == 0, "a rerun changes nothing and succeeds"

        # A migration whose second statement fails: nothing of it stays, not even its first table.
        (sql_dir / "migrations" / "990_half_way.sql").write_text(
            "CREATE TABLE sqlembed.half_way (id int NOT NULL);\nGO\nINSERT sqlembed.half_way VALUES (1 / 0);\nGO\n")
        _render(sql_dir, script, service)
        failed = _sqlcmd(mssql_dsn, name, script)
        assert failed.returncode != 0
        with connect(mssql_dsn, database=name) as owner:
            assert scalar(owner, "SELECT OBJECT_ID(N'sqlembed.half_way')") is None
            assert scalar(owner, "SELECT COUNT(*) FROM sqlembed.migrations WHERE name = N'990_half_way.sql'") == 0
            assert scalar(owner, "SELECT @@TRANCOUNT") == 0
        (sql_dir / "migrations" / "990_half_way.sql").write_text(
            "CREATE TABLE sqlembed.half_way (id int NOT NULL);\nGO\nINSERT sqlembed.half_way VALUES (1);\nGO\n")
        _render(sql_dir, script, service)
        fixed = _sqlcmd(mssql_dsn, name, script)
        assert fixed.returncode == 0, fixed.stdout[-2000:]
        with connect(mssql_dsn, database=name) as owner:
            assert scalar(owner, "SELECT COUNT(*) FROM sqlembed.half_way") == 1
            assert scalar(owner, "SELECT COUNT(*) FROM sqlembed.migrations WHERE name = N'990_half_way.sql'") == 1
            rows = owner.execute("EXEC sqlembed.self_test").fetchall()
            assert all(r.result == "ok" for r in rows), [(r.name, r.detail) for r in rows]
    finally:
        admin.execute(f"ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [{name}]")
