"""The real SQL Server driver (Microsoft's mssql-python) as far as it goes without a server: a
refused connection and a login timeout are one clear error in the caller's envelope (the CLI's
line and exit code, the job API's 503), naming the server and never the password, in no log."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sqlembed.db.connect import connect, mssql_python_args, parse_odbc, sqlalchemy_url
from sqlembed.errors import DatabaseUnavailable, InvalidInput
from sqlembed.settings import Settings
from tests.support import leaks
from tests.support.server import running, with_settings

mssql_python = pytest.importorskip("mssql_python", reason="needs mssql-python (pip install 'sqlembed[mssql]')")


def _driver_loads() -> bool:
    try:
        mssql_python.connect("Server=127.0.0.1,1;UID=x;PWD=y;Encrypt=no", timeout=1)
    except mssql_python.Error as exc:
        return "Failed to load the driver" not in str(exc)
    return True


pytestmark = pytest.mark.skipif(not _driver_loads(), reason="mssql-python's bundled ODBC driver needs libltdl7 "
                                                            "(apt-get install libltdl7)")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connections are refused


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word: a login that can only time out."""
    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    srv.close()


def _secret() -> str:
    password = "Pw;" + os.urandom(6).hex() + "}"
    leaks.register(password)
    leaks.register(password.replace("}", "}}"))
    return password


def _dsn(port: int, password: str, timeout: int = 2) -> str:
    return (f"Driver={{ODBC Driver 18 for SQL Server}};Server=127.0.0.1,{port};Database=app;UID=sa;"
            f"PWD={{{password.replace('}', '}}')}}};Encrypt=no;Connection Timeout={timeout}")


def test_odbc_strings_become_mssql_python_arguments() -> None:
    conn_str, kwargs, secrets = mssql_python_args("DRIVER={ODBC Driver 18 for SQL Server};Data Source=h,1433;"
                                                  "User ID=u;Password={p;w}}d};Initial Catalog=db;Login Timeout=7")
    assert conn_str == "Server=h,1433;UID=u;PWD={p;w}}d};Database=db" and kwargs == {"timeout": 7}
    assert secrets == ["p;w}d"]
    assert parse_odbc("A=1; B = {x;y} ;C=") == [("A", "1"), ("B", "x;y"), ("C", "")]
    with pytest.raises(InvalidInput, match="unclosed brace"):
        parse_odbc("PWD={never closed")
    url, args = sqlalchemy_url("Server=h,1433;Database=db;UID=u;PWD=p@ss;Encrypt=yes;Connection Timeout=3")
    assert url == "mssql+mssqlpython://u:p%40ss@h:1433/db?Encrypt=yes" and args == {"timeout": 3}


def test_refused_connection_is_one_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    password = _secret()
    port = _closed_port()
    caplog.set_level("DEBUG")
    t0 = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        connect(_dsn(port, password), timeout=2)
    assert time.monotonic() - t0 < 30
    message = info.value.message
    assert message.startswith(f"cannot connect to SQL Server at 127.0.0.1,{port}: OperationalError")
    assert "TCP Provider" in message and password not in message and "PWD" not in message
    assert password not in caplog.text


def test_login_timeout_is_one_clear_error(silent_server: int) -> None:
    password = _secret()
    t0 = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        connect(_dsn(silent_server, password, timeout=2), timeout=2)
    took = time.monotonic() - t0
    assert 1.5 <= took < 20, took
    assert "127.0.0.1" in info.value.message and password not in info.value.message


def test_cli_says_it_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    password = _secret()
    p = subprocess.run([sys.executable, "-m", "sqlembed", "db", "status", "--dsn", _dsn(_closed_port(), password)],
                       capture_output=True, text=True, timeout=120)
    (tmp_path / "cli.log").write_text(p.stdout + p.stderr)  # scanned again by tests/zz_leaks
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "cannot connect to SQL Server at 127.0.0.1" in errors[0]
    assert "Traceback" not in p.stderr and password not in p.stdout + p.stderr


def test_job_api_answers_503_in_its_envelope(base_settings: Settings, tmp_path: Path) -> None:
    password = _secret()
    dsn = _dsn(_closed_port(), password, timeout=1)
    settings = with_settings(base_settings, databases=json.dumps({"app": dsn}), db_retry_s=2,
                             state_dir=tmp_path / "state")
    with running(settings) as srv:
        body = {"db": "app", "table": "dbo.docs", "key": "id", "text": "body", "vector": "embedding"}
        r = httpx.post(srv.url + "/v1/jobs", json=body, timeout=120)
        assert r.status_code == 503, r.text
        err: dict[str, Any] = r.json()["error"]
        assert err["code"] == "database_unavailable" and "stayed unavailable" in err["message"]
        assert password not in r.text and "PWD" not in r.text
        assert httpx.post(srv.url + "/api/embed", json={"input": "still serving"}).status_code == 200
