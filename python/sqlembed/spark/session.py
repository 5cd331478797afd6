"""The one long-lived SparkSession a process holds, configured from settings."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TASK_MAX_FAILURES = 4
def discovery_script() -> Path:
    """Spark's GPU discovery script, shipped inside the package (and so inside every image)."""
    return Path(str(resources.files("sqlembed.spark") / "getGpusResources.sh"))


def spark_conf(master: str, *, gpu: bool, task_gpu_amount: float = 1.0,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    m = re.fullmatch(r"local\[(\d+|\*)\]", master)
    if m:
        # local[N] never retries a failed task; local[N,F] does, as a cluster would.
        master = f"local[{m.group(1)},{TASK_MAX_FAILURES}]"
    conf = {
        "spark.master": master,
        "spark.app.name": "sqlembed",
        # One Python worker per executor core, reused across tasks: the engine loads once per worker.
        "spark.python.worker.reuse": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.task.maxFailures": str(TASK_MAX_FAILURES),
        # Online batches (spark/dispatch.py) run in their own pool so a bulk job cannot starve them.
        "spark.scheduler.mode": "FAIR",
        # Executors run the same interpreter (and so the same sqlembed) as the driver unless
        # the cluster's images say otherwise through `extra`.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if gpu:
        conf["spark.executor.resource.gpu.amount"] = "1"
        conf["spark.task.resource.gpu.amount"] = str(task_gpu_amount)
        conf["spark.executor.resource.gpu.discoveryScript"] = str(discovery_script())
    conf.update(extra or {})
    return conf


def build_session(conf: dict[str, str]) -> Any:
    from pyspark.sql import SparkSession

    # The in-process launcher reads the executors' interpreter from the environment, not the conf.
    os.environ.setdefault("PYSPARK_PYTHON", conf.get("spark.pyspark.python", sys.executable))
    builder = SparkSession.builder
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session on %s", conf["spark.master"])
    return spark


class SessionHolder:
    """The process's one SparkSession, built on first use and shared by bulk jobs and online dispatch.

    A session handed in by ``factory``, or one already running in the process, belongs to its
    owner; only one this holder started is stopped.
    """

    def __init__(self, conf: dict[str, str] | None = None, factory: Callable[[], Any] | None = None) -> None:
        self._conf = conf
        self._factory = factory
        self._spark: Any = None
        self._owned = False
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._spark is not None

    def get(self) -> Any:
        with self._lock:
            if self._spark is None:
                if self._factory is not None:
                    self._spark = self._factory()
                else:
                    from pyspark import SparkContext

                    # getOrCreate hands back a session someone else in this process started (an
                    # embedding application, a test); stopping that one on close would pull it from
                    # under its owner. pyspark has no public "was it created" answer.
                    self._owned = SparkContext._active_spark_context is None
                    self._spark = build_session(self._conf or spark_conf("local[*]", gpu=False))
            return self._spark

    def peek(self) -> Any:
        """The session if one exists, without building one."""
        return self._spark

    def close(self) -> None:
        with self._lock:
            if self._spark is not None and self._owned:
                self._spark.stop()
            self._spark = None
