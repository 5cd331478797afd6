"""Faults, each asserted on data: the service SIGKILLed mid-job and restarted, the database locked
for 20 s mid-write, a Spark executor killed mid-task, a missing or corrupt model at start, and a
full disk under the job store.

Exactly-once is checked with a trigger that records every write of a row's vector."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sqlembed.benchmark.cluster import Cluster, free_port, wait_port
from sqlembed.settings import Settings
from tests.spark.conftest import sentences
from tests.support.server import running, with_settings

pytestmark = [pytest.mark.slow, pytest.mark.spark]
MODEL = "all-minilm-l6-v2-fp32"


def make_counted_table(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, embedding TEXT)")
    conn.execute("CREATE TABLE writes (id INTEGER NOT NULL)")
    conn.execute("CREATE TRIGGER count_writes AFTER UPDATE OF embedding ON docs "
                 "BEGIN INSERT INTO writes (id) VALUES (new.id); END")
    conn.executemany("INSERT INTO docs (id, body) VALUES (?, ?)", list(enumerate(sentences(rows), start=1)))
    conn.commit()
    conn.close()


def assert_whole(path: Path) -> None:
    """No row written twice, and nothing half-written: every vector has its state row and back."""
    conn = sqlite3.connect(path)
    try:
        twice = conn.execute("SELECT id, COUNT(*) FROM writes GROUP BY id HAVING COUNT(*) > 1 LIMIT 5").fetchall()
        assert twice == [], f"rows written more than once: {twice}"
        orphans = conn.execute(
            "SELECT COUNT(*) FROM docs d LEFT JOIN sqlembed_embedding_state s "
            "ON s.source_table = 'docs' AND s.row_key = CAST(d.id AS TEXT) "
            "WHERE (d.embedding IS NULL) <> (s.row_key IS NULL)").fetchone()[0]
        assert orphans == 0
    finally:
        conn.close()


def assert_each_row_written_once(path: Path, rows: int) -> None:
    assert_whole(path)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM docs WHERE embedding IS NULL").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(DISTINCT id) FROM writes").fetchone()[0] == rows
    finally:
        conn.close()


def written(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM docs WHERE embedding IS NOT NULL").fetchone()[0])
    finally:
        conn.close()


def start_job(url: str, db: Path, batch_rows: int, until_written: int) -> tuple[str, float]:
    """Submit a bulk job on docs and return (job id, deadline) once it has written some rows."""
    r = httpx.post(url + "/v1/jobs", json={"db": "app", "table": "docs", "key": "id", "text": "body",
                                           "vector": "embedding", "batch_rows": batch_rows})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while written(db) < until_written:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return str(r.json()["id"]), deadline


def final_job(url: str, job_id: str, deadline: float) -> dict[str, Any]:
    while (job := httpx.get(f"{url}/v1/jobs/{job_id}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return dict(job)


class Serve:
    def __init__(self, model_dir: Path, state: Path, db: Path, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_STATE_DIR": str(state),
                    "SQLEMBED_DATABASES": json.dumps({"app": f"sqlite:///{db}"}), "SQLEMBED_API_KEYS": "",
                    "SQLEMBED_SPARK_MASTER": "local[2]", "SQLEMBED_THREADS": "1", **env}
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(self.port)],
                                     env=self.env, stdout=log.open("a"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_port(self.port, 120)

    def kill(self) -> None:
        # SIGKILL the whole process group: the service, its Spark JVM and the Python workers.
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def submit(self, **extra: Any) -> str:
        r = httpx.post(self.url + "/v1/jobs", json={"db": "app", "table": "docs", "key": "id", "text": "body",
                                                    "vector": "embedding", **extra}, timeout=30)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/v1/jobs/{job_id}", timeout=30).json())

    def wait(self, job_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["state"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        return job


def test_service_sigkilled_mid_job_then_restarted(model_dir: Path, tmp_path: Path) -> None:
    rows = 3000
    db = tmp_path / "app.db"
    make_counted_table(db, rows)
    state, log = tmp_path / "state", tmp_path / "serve.log"
    first = Serve(model_dir, state, db, log)
    try:
        job_id = first.submit(batch_rows=64)
        deadline = time.monotonic() + 180
        while written(db) < 200:
            assert time.monotonic() < deadline and first.proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        first.kill()
    finally:
        first.stop()
    done_before = written(db)
    assert 0 < done_before < rows, "killed mid-job"
    second = Serve(model_dir, state, db, log)
    try:
        old = second.job(job_id)
        assert old["state"] == "failed" and "interrupted" in old["last_error"], old
        again = second.wait(second.submit(batch_rows=64))
        assert again["state"] == "succeeded", again
        assert again["rows_done"] == rows - done_before, (again, done_before)
    finally:
        second.stop()
    assert_each_row_written_once(db, rows)


def test_database_locked_for_20_s_mid_write_is_retried(base_settings: Settings, spark_local: Any,
                                                       tmp_path: Path) -> None:
    rows = 1500
    db = tmp_path / "app.db"
    make_counted_table(db, rows)
    settings = with_settings(base_settings, databases=json.dumps({"app": f"sqlite:///{db}"}),
                             state_dir=tmp_path / "state", db_retry_s=90)
    with running(settings, spark_factory=lambda: spark_local) as srv:
        job_id, deadline = start_job(srv.url, db, batch_rows=64, until_written=100)
        # Another session takes an exclusive lock: no reader, no writer gets in for 20 s.
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        held_at = time.monotonic()
        time.sleep(20)
        locker.execute("COMMIT")
        locker.close()
        written_while_locked = time.monotonic() - held_at
        job = final_job(srv.url, job_id, deadline + 240)
    assert written_while_locked >= 20
    assert job["state"] == "succeeded", job
    assert job["rows_done"] == rows
    assert_each_row_written_once(db, rows)


def test_database_unavailable_past_the_budget_fails_clearly(base_settings: Settings, spark_local: Any,
                                                            tmp_path: Path) -> None:
    rows = 600
    db = tmp_path / "app.db"
    make_counted_table(db, rows)
    settings = with_settings(base_settings, databases=json.dumps({"app": f"sqlite:///{db}"}),
                             state_dir=tmp_path / "state", db_retry_s=4)
    with running(settings, spark_factory=lambda: spark_local) as srv:
        job_id, deadline = start_job(srv.url, db, batch_rows=32, until_written=32)
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            job = final_job(srv.url, job_id, deadline + 300)
        finally:
            locker.execute("COMMIT")
            locker.close()
    assert job["state"] == "failed", job
    assert "stayed unavailable for 4 s" in job["last_error"], job["last_error"]
    # What was written is whole: vectors and state rows agree, and nothing was written twice.
    assert_whole(db)
    assert 0 < written(db) < rows


@pytest.fixture()
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("faults-cluster"), worker_cores=2).start()
    try:
        yield c
    finally:
        c.stop()


def test_spark_executor_killed_mid_task(cluster: Cluster, model_dir: Path, tmp_path: Path) -> None:
    rows = 2500
    db = tmp_path / "app.db"
    make_counted_table(db, rows)
    serve = Serve(model_dir, tmp_path / "state", db, tmp_path / "serve.log", SQLEMBED_SPARK_MASTER=cluster.url)
    try:
        job_id = serve.submit(batch_rows=64)
        deadline = time.monotonic() + 240
        while written(db) < 150:
            assert time.monotonic() < deadline, serve.log.read_text()[-3000:]
            time.sleep(0.2)
        cluster.kill_worker()  # the executor and its Python workers die mid-task
        killed_at = written(db)
        cluster.start_worker()
        job = serve.wait(job_id, timeout=400)
    finally:
        serve.stop()
    assert killed_at < rows
    assert job["state"] == "succeeded", job
    assert_each_row_written_once(db, rows)


def _serve_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sqlembed", "serve", "--port", str(free_port())],
                          env={**os.environ, "SQLEMBED_API_KEYS": "", **env}, capture_output=True, text=True,
                          timeout=120)


def test_missing_or_corrupt_model_at_start(model_dir: Path, tmp_path: Path) -> None:
    # A model that was never built (not the default, so nothing is built on start).
    p = _serve_once({"SQLEMBED_MODEL_DIR": str(tmp_path / "empty"), "SQLEMBED_MODEL": "my-model"})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "my-model-fp32" in p.stderr and str(tmp_path / "empty") in p.stderr
    assert "sqlembed model build --precision fp32 --source" in p.stderr and "--name my-model" in p.stderr

    store = tmp_path / "models"
    shutil.copytree(model_dir / MODEL, store / MODEL)
    (store / MODEL / "model.onnx").write_bytes(b"this is not an ONNX model" * 100)
    p = _serve_once({"SQLEMBED_MODEL_DIR": str(store)})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert str(store / MODEL) in p.stderr
    assert "sqlembed model build --precision fp32 --force" in p.stderr

    shutil.copy(model_dir / MODEL / "model.onnx", store / MODEL / "model.onnx")
    (store / MODEL / "manifest.json").write_text("{ truncated")
    p = _serve_once({"SQLEMBED_MODEL_DIR": str(store)})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "cannot be loaded" in p.stderr and "--force" in p.stderr


@contextlib.contextmanager
def small_filesystem(path: Path, size_kib: int) -> Iterator[bool]:
    """A tmpfs of ``size_kib`` at ``path`` where the machine allows mounting (yields True), else False."""
    path.mkdir(parents=True, exist_ok=True)
    ok = False
    if os.geteuid() == 0 and not os.environ.get("SQLEMBED_TEST_NO_MOUNT"):  # the variable forces the fallback
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
                            capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(directory: Path) -> Path:
    """Write until the filesystem says ENOSPC."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28, exc
    finally:
        os.close(fd)
    return filler


def test_disk_full_under_the_job_store(base_settings: Settings, spark_local: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    db = tmp_path / "app.db"
    make_counted_table(db, 10)
    with small_filesystem(state, 1024) as mounted:
        settings = with_settings(base_settings, databases=json.dumps({"app": f"sqlite:///{db}"}), state_dir=state)
        if not mounted:
            # No tmpfs here: inject ENOSPC at the store's write boundary instead (its sqlite connection).
            import sqlite3 as sq

            from sqlembed.jobs import store as store_mod

            real_connect = sq.connect

            class FullDisk:
                def __init__(self, conn: sq.Connection) -> None:
                    self.conn, self.full = conn, False

                def execute(self, sql: str, *args: Any) -> Any:
                    if self.full and sql.lstrip().upper().startswith("INSERT"):
                        raise sq.OperationalError("database or disk is full")
                    return self.conn.execute(sql, *args)

                def close(self) -> None:
                    self.conn.close()

            holders: list[FullDisk] = []

            def connect(*a: Any, **k: Any) -> Any:
                h = FullDisk(real_connect(*a, **k))
                holders.append(h)
                return h

            monkeypatch.setattr(store_mod.sqlite3, "connect", connect)
        with running(settings, spark_factory=lambda: spark_local) as srv:
            body = {"db": "app", "table": "docs", "key": "id", "text": "body", "vector": "embedding"}
            if mounted:
                filler = _fill(state)
            else:
                for h in holders:
                    h.full = True
            r = httpx.post(srv.url + "/v1/jobs", json=body)
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "job_store_unavailable" and "jobs.db" in err["message"], err
            assert "disk is full" in err["message"]
            # Online embedding does not touch the store: it keeps serving.
            for _ in range(5):
                e = httpx.post(srv.url + "/api/embed", json={"model": "all-minilm", "input": "still here"})
                assert e.status_code == 200 and len(e.json()["embeddings"][0]) == 384
            # Space comes back: the next submission is accepted.
            if mounted:
                filler.unlink()
            else:
                for h in holders:
                    h.full = False
            r = httpx.post(srv.url + "/v1/jobs", json=body)
            assert r.status_code == 202, r.text
            print("disk full by", "a 1 MiB tmpfs" if mounted else "injected ENOSPC")
