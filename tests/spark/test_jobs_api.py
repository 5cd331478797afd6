"""The job API end to end: POST /v1/jobs -> 202 -> poll -> succeeded; cancel; restart; bad input."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sqlembed.jobs.store import SqliteJobStore
from sqlembed.settings import Settings
from tests.spark.conftest import make_table, sentences
from tests.support.server import ServerThread, with_settings

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("jobdbs")
    return {"small": root / "small.db", "big": root / "big.db"}


@pytest.fixture(scope="module")
def job_server(base_settings: Settings, spark_local: Any, dbs: dict[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    make_table(dbs["small"], [*sentences(300), None])
    make_table(dbs["big"], sentences(3000))
    urls = {name: f"sqlite:///{p}" for name, p in dbs.items()}
    import json

    settings = with_settings(base_settings, databases=json.dumps(urls), state_dir=tmp_path_factory.mktemp("state"))
    srv = ServerThread(settings, spark_factory=lambda: spark_local).start()
    yield srv
    srv.stop()


def _wait(url: str, job_id: str, states: set[str], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/v1/jobs/{job_id}").json()
        seen.append(job["state"])
        if job["state"] in states:
            job["seen"] = seen
            return job
        time.sleep(0.2)
    raise AssertionError(f"job stuck in {seen[-1]}")


def test_submit_poll_succeed_and_rerun(job_server: ServerThread) -> None:
    body = {"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding",
            "sql_rest_options": {"retry_count": 2}}
    t0 = time.monotonic()
    r = httpx.post(job_server.url + "/v1/jobs", json=body)
    assert r.status_code == 202 and time.monotonic() - t0 < 2, "answered at once"
    job = r.json()
    assert job["state"] == "queued" and job["id"]
    done = _wait(job_server.url, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["last_error"]
    assert (done["rows_done"], done["rows_failed"]) == (300, 1)
    assert done["started"] and done["finished"] and done["rows_per_s"] > 0
    assert any(j["id"] == job["id"] for j in httpx.get(job_server.url + "/v1/jobs").json()["jobs"])
    again = _wait(job_server.url, httpx.post(job_server.url + "/v1/jobs", json=body).json()["id"], {"succeeded"})
    assert again["rows_done"] == 0


def test_cancel_a_running_job(job_server: ServerThread) -> None:
    body = {"db": "big", "table": "docs", "key": "id", "text": "body", "vector": "embedding", "batch_rows": 64}
    job = httpx.post(job_server.url + "/v1/jobs", json=body).json()
    _wait(job_server.url, job["id"], {"running"})
    time.sleep(2)
    r = httpx.delete(f"{job_server.url}/v1/jobs/{job['id']}")
    assert r.status_code == 200
    final = _wait(job_server.url, job["id"], {"cancelled", "succeeded", "failed"})
    assert final["state"] == "cancelled", final
    # Re-submitting resumes: only the rows still pending are embedded.
    resumed = _wait(job_server.url, httpx.post(job_server.url + "/v1/jobs", json=body).json()["id"],
                    {"succeeded", "failed"}, timeout=300)
    assert resumed["state"] == "succeeded" and 0 < resumed["rows_done"] < 3000


@pytest.mark.parametrize(("body", "status"), [
    ({"table": "docs", "key": "id", "text": "body", "vector": "embedding"}, 400),
    ({"db": "nope", "table": "docs", "key": "id", "text": "body", "vector": "embedding"}, 400),
    ({"db": "small", "table": "docs;drop", "key": "id", "text": "body", "vector": "embedding"}, 400),
    ({"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding", "batch_rows": 0}, 400),
    # Checked in the database before the job is accepted: a 4xx now, not a failed job later.
    ({"db": "small", "table": "nope", "key": "id", "text": "body", "vector": "embedding"}, 400),
    ({"db": "small", "table": "docs", "key": "id", "text": "nope", "vector": "embedding"}, 400),
    # Row filters are proved to be one boolean expression before any SQL runs (contract of issue 13).
    ({"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding",
      "where": "1=1) DELETE FROM docs WHERE (1=1"}, 400),
    ({"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding",
      "where": "id > 0; DROP TABLE docs"}, 400),
    ({"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding",
      "where": "id IN (SELECT id FROM docs)"}, 400),
    ({"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding", "dimensions": 999}, 400),
    ({"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding", "chunk_table": "c"}, 400),
    ({"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding", "chunk_table": "c",
      "chunk_tokens": 64, "chunk_overlap": 32}, 400),
    ({"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding", "sync": "sometimes"}, 400),
])
def test_bad_job_requests(job_server: ServerThread, dbs: dict[str, Path], body: dict[str, Any], status: int) -> None:
    before = sqlite3.connect(dbs["small"]).execute("SELECT COUNT(*) FROM docs").fetchone()[0]
    r = httpx.post(job_server.url + "/v1/jobs", json=body)
    assert r.status_code in (status, 422) and r.json()["error"]["message"], r.text
    assert "sqlite:///" not in r.text, "database URLs are never echoed"
    assert sqlite3.connect(dbs["small"]).execute("SELECT COUNT(*) FROM docs").fetchone()[0] == before


def test_a_chunk_job_with_change_sync_through_the_api(job_server: ServerThread, dbs: dict[str, Path]) -> None:
    body = {"db": "small", "table": "docs", "key": "id", "text": "body", "vector": "embedding",
            "chunk_table": "doc_chunks", "chunk_tokens": 16, "chunk_overlap": 2, "sync": "changes"}
    done = {"succeeded", "failed"}
    first = _wait(job_server.url, httpx.post(job_server.url + "/v1/jobs", json=body).json()["id"], done)
    assert first["state"] == "succeeded" and first["mode"] == "changes", first
    conn = sqlite3.connect(dbs["small"])
    assert conn.execute("SELECT COUNT(DISTINCT id) FROM doc_chunks").fetchone()[0] == 300
    conn.execute("DELETE FROM docs WHERE id = 5")
    conn.execute("UPDATE docs SET body = 'changed text' WHERE id = 6")
    conn.commit()
    again = _wait(job_server.url, httpx.post(job_server.url + "/v1/jobs", json=body).json()["id"], done)
    assert (again["state"], again["mode"], again["rows_total"], again["rows_done"], again["rows_deleted"]) == \
        ("succeeded", "changes", 1, 1, 1), again
    assert conn.execute("SELECT COUNT(*) FROM doc_chunks WHERE id = 5").fetchone()[0] == 0
    conn.close()


def test_unknown_job_is_404(job_server: ServerThread) -> None:
    for method in ("GET", "DELETE"):
        r = httpx.request(method, job_server.url + "/v1/jobs/doesnotexist")
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"


def test_restart_marks_interrupted_jobs_failed(tmp_path: Path, base_settings: Settings) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    job = store.create({"db": "x", "table": "t", "key": "k", "text": "t", "vector": "v"})
    job.state = "running"
    store.save(job)
    store.close()
    srv = ServerThread(with_settings(base_settings, state_dir=tmp_path)).start()
    try:
        got = httpx.get(f"{srv.url}/v1/jobs/{job.id}").json()
        assert got["state"] == "failed" and "interrupted by a service restart" in got["last_error"]
    finally:
        srv.stop()
