"""A real standalone cluster (Master + one Worker on 127.0.0.1, pyspark's bundled spark-class), the
worker given one GPU address by containers/spark/getGpusResources.sh, and a job through
POST /v1/jobs on `sqlembed serve` configured for that cluster."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sqlembed.spark.session import DISCOVERY_SCRIPT
from tests.spark.conftest import make_table, sentences

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spark_class() -> str:
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not path.exists():
        pytest.skip("this pyspark has no bin/spark-class")
    return str(path)


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("cluster")
    port = _port()
    master_url = f"spark://127.0.0.1:{port}"
    env = {**os.environ, "SPARK_LOG_DIR": str(logs), "SQLEMBED_GPU_ADDRESSES": "0",
           "SPARK_WORKER_DIR": str(logs / "work"),
           "SPARK_WORKER_OPTS": f"-Dspark.worker.resource.gpu.amount=1 "
                                f"-Dspark.worker.resource.gpu.discoveryScript={DISCOVERY_SCRIPT}"}
    procs = [subprocess.Popen([_spark_class(), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(_port())],
                              env=env, stdout=(logs / "master.log").open("w"), stderr=subprocess.STDOUT)]
    try:
        _wait_port(port)
        procs.append(subprocess.Popen(
            [_spark_class(), "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
             "--cores", "2", "--memory", "2g", "--webui-port", str(_port())],
            env=env, stdout=(logs / "worker.log").open("w"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while "Successfully registered with master" not in (logs / "worker.log").read_text():
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()[-2000:]
            time.sleep(0.3)
        yield master_url
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)


def test_job_runs_on_the_standalone_cluster_with_a_gpu_address(cluster: str, model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "cluster.db"
    make_table(db, sentences(400))
    port = _port()
    env = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_SPARK_MASTER": cluster,
           "SQLEMBED_SPARK_GPU": "true", "SQLEMBED_STATE_DIR": str(tmp_path / "state"),
           "SQLEMBED_DATABASES": json.dumps({"main": f"sqlite:///{db}"}), "SQLEMBED_API_KEYS": ""}
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(port)], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_port(port)
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
