"""A real standalone Spark cluster on 127.0.0.1 from pyspark's bundled spark-class, for benchmarks
and tests: one Master and a Worker that can be killed (with its executor and Python workers) and
started again. The Worker gets one GPU address from the packaged getGpusResources.sh."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from sqlembed.spark.session import discovery_script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listening on {port}")


def spark_class() -> str:
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not path.exists():
        raise FileNotFoundError(f"this pyspark has no bin/spark-class ({path})")
    return str(path)


class Cluster:
    def __init__(self, logs: Path, worker_cores: int = 2) -> None:
        self.logs = logs
        self.port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.worker_cores = worker_cores
        self.env = {**os.environ, "SPARK_LOG_DIR": str(logs), "SQLEMBED_GPU_ADDRESSES": "0",
                    "SPARK_WORKER_DIR": str(logs / "work"),
                    "SPARK_WORKER_OPTS": f"-Dspark.worker.resource.gpu.amount=1 "
                                         f"-Dspark.worker.resource.gpu.discoveryScript={discovery_script()}"}
        self.master: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self._workers_started = 0

    def start(self) -> Cluster:
        self.master = subprocess.Popen(
            [spark_class(), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(self.port),
             "--webui-port", str(free_port())],
            env=self.env, stdout=(self.logs / "master.log").open("w"), stderr=subprocess.STDOUT)
        wait_port(self.port)
        self.start_worker()
        return self

    def start_worker(self) -> None:
        self._workers_started += 1
        log = self.logs / f"worker-{self._workers_started}.log"
        # Its own process group, so a kill takes the executor JVM and its Python workers with it.
        self.worker = subprocess.Popen(
            [spark_class(), "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
             "--cores", str(self.worker_cores), "--memory", "2g", "--webui-port", str(free_port())],
            env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while "Successfully registered with master" not in log.read_text():
            if time.monotonic() > deadline:
                raise TimeoutError("the Worker did not register: " + log.read_text()[-2000:])
            time.sleep(0.3)

    def kill_worker(self) -> None:
        """SIGKILL the Worker, its executor and their Python workers: a machine going away."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(30)
        self.worker = None

    def stop(self) -> None:
        if self.worker is not None:
            self.kill_worker()
        if self.master is not None:
            self.master.terminate()
            self.master.wait(30)
