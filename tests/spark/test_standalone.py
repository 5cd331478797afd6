"""A real standalone cluster (Master + one Worker on 127.0.0.1, pyspark's bundled spark-class), the
worker given one GPU address by the packaged getGpusResources.sh, and a job through
POST /v1/jobs on `sqlembed serve` configured for that cluster."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sqlembed.benchmark.cluster import Cluster, free_port, wait_port
from tests.spark.conftest import make_table, sentences

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    c = Cluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield c.url
    finally:
        c.stop()


def test_job_runs_on_the_standalone_cluster_with_a_gpu_address(cluster: str, model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "cluster.db"
    make_table(db, sentences(400))
    port = free_port()
    env = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_SPARK_MASTER": cluster,
           "SQLEMBED_SPARK_GPU": "true", "SQLEMBED_STATE_DIR": str(tmp_path / "state"),
           "SQLEMBED_DATABASES": json.dumps({"main": f"sqlite:///{db}"}), "SQLEMBED_API_KEYS": ""}
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(port)], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_port(port)
        r = httpx.post(url + "/v1/jobs", json={"db": "main", "table": "docs", "key": "id", "text": "body",
                                               "vector": "embedding"})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 240
        while True:
            job = httpx.get(f"{url}/v1/jobs/{r.json()['id']}").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["state"] == "succeeded", (job, (tmp_path / "serve.log").read_text()[-3000:])
        assert job["rows_done"] == 400
        assert job["gpus"] == ["0"], "the executor task saw the GPU address the worker discovered"
        conn = sqlite3.connect(db)
        assert conn.execute("SELECT COUNT(*) FROM docs WHERE embedding IS NULL").fetchone()[0] == 0
        conn.close()
    finally:
        serve.terminate()
        serve.wait(60)
