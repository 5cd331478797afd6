"""Online placement (spark/dispatch.py): batches on long-running executor tasks, local fallback.

The same texts through placement=local and placement=spark give the same vectors; the real
`ollama` and `openai` clients get those vectors from `sqlembed serve --placement spark`; a bulk
job beside online traffic keeps online p99 under 2 s; on a real standalone cluster, 32 clients
see no failure while the Worker is SIGKILLed and started again.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from sqlembed.benchmark.cluster import Cluster, free_port, wait_port
from sqlembed.settings import Settings
from tests.spark.conftest import make_table, sentences
from tests.support.server import ServerThread, with_settings
from tests.support.texts import varied_texts

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def placement_counts(metrics_text: str) -> dict[str, float]:
    out = {"local": 0.0, "spark": 0.0, "fallback": 0.0}
    for m in re.finditer(r'^sqlembed_placement_batches_total\{placement="(\w+)"\} (\S+)$', metrics_text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def embed_all(url: str, texts: list[str]) -> np.ndarray:
    with httpx.Client(timeout=120) as c:
        out = []
        for i in range(0, len(texts), 50):  # several requests, so several batches are formed
            r = c.post(url + "/api/embed", json={"model": "all-minilm", "input": texts[i : i + 50]})
            assert r.status_code == 200, r.text
            out.extend(r.json()["embeddings"])
    return np.asarray(out, dtype=np.float64)


@pytest.fixture(scope="module")
def spark_server(base_settings: Settings, spark_local: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[ServerThread, Path]]:
    db = tmp_path_factory.mktemp("placement") / "bulk.db"
    make_table(db, sentences(3000))
    settings = with_settings(base_settings, placement="spark", spark_master="local[2]",
                             databases=json.dumps({"bulk": f"sqlite:///{db}"}),
                             state_dir=tmp_path_factory.mktemp("placement-state"))
    # ServerThread waits for /readyz 200, which placement=spark gives once an executor task is connected.
    srv = ServerThread(settings, spark_factory=lambda: spark_local).start(ready_timeout=180)
    try:
        yield srv, db
    finally:
        srv.stop()


def test_same_vectors_local_and_spark(base_url: str, spark_server: tuple[ServerThread, Path]) -> None:
    srv, _ = spark_server
    texts = varied_texts()[:300]
    assert len(texts) == 300
    before = placement_counts(httpx.get(srv.url + "/metrics").text)
    local = embed_all(base_url, texts)
    spark = embed_all(srv.url, texts)
    after = placement_counts(httpx.get(srv.url + "/metrics").text)
    cos = np.sum(local * spark, axis=1) / (np.linalg.norm(local, axis=1) * np.linalg.norm(spark, axis=1))
    assert cos.min() >= 0.99999, f"min cosine {cos.min()}"
    assert after["spark"] > before["spark"], "the batches ran on the executor"
    assert after["local"] == before["local"] and after["fallback"] == before["fallback"]
    ready = httpx.get(srv.url + "/readyz").json()
    assert ready["placement"]["mode"] == "spark" and ready["placement"]["active"] == "spark"
    assert len(ready["placement"]["workers"]) == 1


def test_cli_placement_spark_answers_the_real_clients(base_url: str, model_dir: Path, tmp_path: Path) -> None:
    import ollama
    import openai

    port = free_port()
    env = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_STATE_DIR": str(tmp_path / "state"),
           "SQLEMBED_API_KEYS": "", "SQLEMBED_THREADS": "2"}
    log = tmp_path / "serve.log"
    serve = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(port), "--placement", "spark",
                              "--spark-master", "local[2]"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    texts = ["SQL Server 2025 vector search", "embeddings on a Spark executor", "γειά σου κόσμε"]
    try:
        wait_port(port, 120)
        _wait(lambda: httpx.get(url + "/readyz").status_code == 200, 180, "an executor task")
        o_local = ollama.Client(host=base_url).embed(model="all-minilm", input=texts).embeddings
        o_spark = ollama.Client(host=url).embed(model="all-minilm", input=texts).embeddings
        np.testing.assert_allclose(o_spark, o_local, atol=1e-5)
        a_local = openai.OpenAI(base_url=base_url + "/v1", api_key="unused").embeddings.create(
            model="all-minilm", input=texts)
        a_spark = openai.OpenAI(base_url=url + "/v1", api_key="unused").embeddings.create(
            model="all-minilm", input=texts)
        np.testing.assert_allclose([d.embedding for d in a_spark.data], [d.embedding for d in a_local.data],
                                   atol=1e-5)
        counts = placement_counts(httpx.get(url + "/metrics").text)
        assert counts["spark"] >= 2 and counts["local"] == 0 and counts["fallback"] == 0, counts
    finally:
        serve.terminate()
        serve.wait(60)
    assert "Traceback" not in log.read_text()


def _storm(url: str, clients: int, stop: threading.Event, results: list[tuple[float, int, float]]) -> list[Any]:
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(timeout=60) as c:
            n = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    status = c.post(url + "/api/embed", json={"model": "all-minilm",
                                                              "input": f"client {i} asks question {n}"}).status_code
                except httpx.HTTPError:
                    status = -1
                with lock:
                    results.append((time.monotonic(), status, time.perf_counter() - t0))
                n += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    return threads


def test_bulk_job_beside_online_traffic_keeps_p99_under_2s(spark_server: tuple[ServerThread, Path]) -> None:
    srv, db = spark_server
    r = httpx.post(srv.url + "/v1/jobs", json={"db": "bulk", "table": "docs", "key": "id", "text": "body",
                                               "vector": "embedding", "batch_rows": 256})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    before = placement_counts(httpx.get(srv.url + "/metrics").text)
    stop = threading.Event()
    results: list[tuple[float, int, float]] = []
    # Measure while the job is actually running, for up to 30 s.
    deadline = time.monotonic() + 60
    while httpx.get(f"{srv.url}/v1/jobs/{job_id}").json()["state"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    threads = _storm(srv.url, 8, stop, results)
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end and httpx.get(f"{srv.url}/v1/jobs/{job_id}").json()["state"] == "running":
        time.sleep(0.5)
    overlap_job = httpx.get(f"{srv.url}/v1/jobs/{job_id}").json()
    stop.set()
    for t in threads:
        t.join(60)
    latencies = sorted(lat for _, status, lat in results if status == 200)
    assert len(latencies) == len(results) and len(results) > 50, (len(results), {s for _, s, _ in results})
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    assert p99 < 2.0, f"online p99 {p99:.3f} s beside a bulk job"
    assert overlap_job["rows_done"] > 0, "the bulk job made progress during the measurement"
    after = placement_counts(httpx.get(srv.url + "/metrics").text)
    assert after["spark"] > before["spark"]
    deadline = time.monotonic() + 240
    while (job := httpx.get(f"{srv.url}/v1/jobs/{job_id}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["state"] == "succeeded" and job["rows_done"] == 3000, job
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM docs WHERE embedding IS NULL").fetchone()[0] == 0
    conn.close()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("placement-cluster")).start()
    try:
        yield c
    finally:
        c.stop()


def _ready(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/readyz", timeout=10).json())


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_worker_killed_and_restarted_under_32_clients(standalone: Cluster, model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_SPARK_GPU": "true",
           "SQLEMBED_SPARK_TASK_GPU_AMOUNT": "0.5", "SQLEMBED_STATE_DIR": str(tmp_path / "state"),
           "SQLEMBED_API_KEYS": "", "SQLEMBED_THREADS": "1", "SQLEMBED_DISPATCH_TIMEOUT_S": "5"}
    log = tmp_path / "serve.log"
    serve = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(port), "--placement", "auto",
                              "--spark-master", standalone.url], env=env, stdout=log.open("w"),
                             stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    results: list[tuple[float, int, float]] = []
    threads: list[Any] = []
    try:
        wait_port(port, 120)
        # auto serves locally until the executor task connects.
        _wait(lambda: _ready(url).get("placement", {}).get("active") == "spark", 180, "an executor task")
        worker = _ready(url)["placement"]["workers"][0]
        assert worker["gpu"] == "0", "the online task holds a share of the worker's GPU address"
        threads = _storm(url, 32, stop, results)
        time.sleep(4)
        m1 = placement_counts(httpx.get(url + "/metrics").text)
        assert m1["spark"] > 0
        standalone.kill_worker()
        _wait(lambda: _ready(url)["placement"]["active"] == "local", 60, "the switch to local")
        time.sleep(3)
        m2 = placement_counts(httpx.get(url + "/metrics").text)
        assert m2["local"] + m2["fallback"] > m1["local"] + m1["fallback"], (m1, m2)
        standalone.start_worker()
        _wait(lambda: _ready(url)["placement"]["active"] == "spark", 180, "the switch back to spark")
        time.sleep(3)
        m3 = placement_counts(httpx.get(url + "/metrics").text)
        assert m3["spark"] > m2["spark"], (m2, m3)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        serve.terminate()
        serve.wait(60)
    failed = [(t, s) for t, s, _ in results if s != 200]
    assert not failed, (failed[:10], log.read_text()[-3000:])
    assert len(results) > 200
    print(f"placement batches: before kill {m1}, after kill {m2}, after restart {m3}; {len(results)} requests")
