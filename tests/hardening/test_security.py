"""Hostile input and key handling: identifier injection refused before any SQL runs, several API
keys and rotation without a restart (keys file, SIGHUP), TLS 1.2+ only, bounded bodies and JSON
depth, and secrets kept out of CLI errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from sqlembed.benchmark.cluster import free_port, wait_port
from sqlembed.settings import Settings
from sqlembed.tls import TlsFiles
from tests.support import leaks
from tests.support.fake import FakeBackend
from tests.support.server import ServerThread, running, with_settings

pytestmark = pytest.mark.slow

HOSTILE_NAMES = [
    "docs; DROP TABLE docs",
    "docs--",
    "docs/*x*/",
    'do"cs',
    "[docs]",
    "docs\n",
    "d\u043ecs",  # Cyrillic o, a look-alike
    "docs\u200b",  # zero-width space
    "ｄｏｃｓ",  # full-width
    "docs'",
    "a.b.c",
    "",
]


@pytest.fixture()
def executed_sql() -> Iterator[list[str]]:
    """Every statement SQLAlchemy sends to any database in this process."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    yield seen
    sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)


@pytest.fixture()
def job_server(fake_settings: Settings, tmp_path: Path) -> Iterator[tuple[ServerThread, Path]]:
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, embedding TEXT)")
    conn.execute("INSERT INTO docs (id, body) VALUES (1, 'one')")
    conn.commit()
    conn.close()
    settings = with_settings(fake_settings, databases=json.dumps({"app": f"sqlite:///{db}"}),
                             state_dir=tmp_path / "state")
    with running(settings, backend=FakeBackend()) as srv:
        yield srv, db


@pytest.mark.parametrize("field", ["table", "key", "text", "vector", "target_table"])
def test_identifier_injection_through_the_job_api_is_refused_before_any_sql(
        job_server: tuple[ServerThread, Path], executed_sql: list[str], field: str) -> None:
    srv, db = job_server
    base = {"db": "app", "table": "docs", "key": "id", "text": "body", "vector": "embedding"}
    before = len(httpx.get(srv.url + "/v1/jobs").json()["jobs"])
    for name in HOSTILE_NAMES:
        if field != "table" and name == "a.b.c":
            continue
        r = httpx.post(srv.url + "/v1/jobs", json={**base, field: name})
        assert r.status_code == 400, (field, name, r.text)
        assert r.json()["error"]["message"], r.text  # the OpenAI-style envelope of /v1/
    assert executed_sql == [], "no SQL ran for a refused job"
    assert len(httpx.get(srv.url + "/v1/jobs").json()["jobs"]) == before, "no job was recorded"
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 1
    conn.close()


def test_where_filter_cannot_chain_statements(job_server: tuple[ServerThread, Path], executed_sql: list[str]) -> None:
    srv, _ = job_server
    for where in ["1=1; DROP TABLE docs", "1=1 -- x", "1=1 /* x */"]:
        r = httpx.post(srv.url + "/v1/jobs", json={"db": "app", "table": "docs", "key": "id", "text": "body",
                                                   "vector": "embedding", "where": where})
        assert r.status_code == 400, r.text
    assert executed_sql == []


def test_embed_table_cli_refuses_hostile_identifiers(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, embedding TEXT)")
    conn.commit()
    conn.close()
    for name in ["docs; DROP TABLE docs", "d\u043ecs", "docs\n"]:
        p = subprocess.run([sys.executable, "-m", "sqlembed", "embed-table", "--db", f"sqlite:///{db}", "--table", name,
                            "--key", "id", "--text", "body", "--vector", "embedding", "--spark", "local[1]"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, p.stderr[-2000:]
        assert "plain identifiers" in p.stderr and "Traceback" not in p.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == [("docs",)]
    conn.close()


def test_several_keys_and_rotation_through_the_keys_file(fake_settings: Settings, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    old, new, fixed = "rotate-old-4f1c2a", "rotate-new-9b7d3e", "fixed-key-2c8e1f"
    for k in (old, new, fixed):
        leaks.register(k)
    keys_file.write_text(f"# one key per line\n{old}\n")
    settings = with_settings(fake_settings, api_keys=fixed, api_keys_file=keys_file)
    body = {"model": "all-minilm", "input": "rotate"}
    with running(settings, backend=FakeBackend()) as srv:
        def status(key: str) -> int:
            return httpx.post(srv.url + "/api/embed", json=body, headers={"api-key": key}).status_code

        assert (status(old), status(fixed), status(new)) == (200, 200, 401)
        keys_file.write_text(f"{old}\n{new}\n")  # both during the move
        deadline = time.monotonic() + 5
        while status(new) != 200:
            assert time.monotonic() < deadline, "the keys file change was not picked up"
            time.sleep(0.2)
        assert status(old) == 200
        keys_file.write_text(f"{new}\n")
        deadline = time.monotonic() + 5
        while status(old) != 401:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert (status(new), status(fixed)) == (200, 200)
        keys_file.unlink()  # an unreadable file keeps the last good keys
        time.sleep(1.2)
        assert (status(new), status(old)) == (200, 401)


def test_sighup_reloads_keys_in_the_cli(model_dir: Path, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    a, b = "sighup-key-a-71c0", "sighup-key-b-3e9d"
    leaks.register(a)
    leaks.register(b)
    keys_file.write_text(a + "\n")
    port = free_port()
    env = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_API_KEYS": "",
           "SQLEMBED_API_KEYS_FILE": str(keys_file), "SQLEMBED_STATE_DIR": str(tmp_path / "state")}
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(port)], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1/models"
    try:
        wait_port(port, 120)
        assert httpx.get(url, headers={"api-key": a}).status_code == 200
        # Same size, same second: only the signal can tell the service to look again.
        st = keys_file.stat()
        keys_file.write_text(b + "\n")
        os.utime(keys_file, ns=(st.st_atime_ns, st.st_mtime_ns))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while httpx.get(url, headers={"api-key": b}).status_code != 200:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert httpx.get(url, headers={"api-key": a}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)
    assert "Traceback" not in log.read_text()


def _tls11_client(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def _client_can_speak_tls11(files: TlsFiles) -> bool:
    """Control: against a server that allows TLS 1.1, does this client get a TLS 1.1 session?"""
    import socket
    import threading

    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(files.cert, files.key)
    srv.set_ciphers("DEFAULT:@SECLEVEL=0")
    srv.minimum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(OSError):
                srv.wrap_socket(conn, server_side=True).close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            with _tls11_client(files.ca_cert).wrap_socket(socket.create_connection(listener.getsockname()),
                                                          server_hostname="localhost") as s:
                return s.version() == "TLSv1.1"
        except OSError:
            return False
        finally:
            t.join(5)


def test_tls_below_1_2_is_refused(fake_settings: Settings, tls_files: TlsFiles, server_tls: ssl.SSLContext) -> None:
    if not _client_can_speak_tls11(tls_files):
        pytest.skip("this OpenSSL cannot negotiate TLS 1.1 even with a permissive server: a refusal proves nothing")
    trust = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    with running(fake_settings, ssl_context=server_tls, verify=trust, backend=FakeBackend()) as srv:
        with pytest.raises(httpx.ConnectError):
            httpx.get(srv.url + "/healthz", verify=_tls11_client(tls_files.ca_cert))
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = ssl.create_default_context(cafile=str(tls_files.ca_cert))
            ctx.minimum_version = ctx.maximum_version = version
            assert httpx.get(srv.url + "/healthz", verify=ctx).status_code == 200


def test_body_size_and_json_depth_are_bounded(fake_settings: Settings) -> None:
    with running(with_settings(fake_settings, max_body_bytes=64 * 1024), backend=FakeBackend()) as srv:
        big = httpx.post(srv.url + "/v1/embeddings", content=b'{"input": "' + b"x" * 70_000 + b'"}',
                         headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
        deep = b"[" * 20_000 + b"]" * 20_000
        for path in ("/api/embed", "/v1/embeddings", "/v1/sqlserver/embed", "/v1/jobs"):
            r = httpx.post(srv.url + path, content=b'{"input": ' + deep + b"}",
                           headers={"content-type": "application/json"})
            assert r.status_code == 400, (path, r.status_code, r.text[:200])
        assert httpx.get(srv.url + "/healthz").status_code == 200


def test_cli_errors_do_not_echo_connection_secrets(tmp_path: Path) -> None:
    password = "Pw-" + os.urandom(6).hex()
    leaks.register(password)
    dsn = f"Driver={{ODBC Driver 18 for SQL Server}};Server=127.0.0.1,1;UID=sa;PWD={password};Encrypt=yes"
    url = f"mssql+pyodbc://sa:{password}@127.0.0.1:1/app?driver=ODBC+Driver+18+for+SQL+Server"
    leaks.register_url(url)
    runs = [
        [sys.executable, "-m", "sqlembed", "db", "status", "--dsn", dsn],
        [sys.executable, "-m", "sqlembed", "db", "status", "--dsn", url],
        [sys.executable, "-m", "sqlembed", "embed-table", "--db", url, "--table", "docs", "--key", "id",
         "--text", "body", "--vector", "embedding", "--spark", "local[1]"],
    ]
    for cmd in runs:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        out = p.stdout + p.stderr
        (tmp_path / f"cli-{runs.index(cmd)}.log").write_text(out)  # scanned again by tests/zz_leaks
        assert p.returncode != 0
        assert password not in out, out[-1500:]
