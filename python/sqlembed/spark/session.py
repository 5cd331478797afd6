"""The one long-lived SparkSession a process holds, configured from settings."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TASK_MAX_FAILURES = 4
DISCOVERY_SCRIPT = Path(__file__).resolve().parents[3] / "containers" / "spark" / "getGpusResources.sh"


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
        # Executors run the same interpreter (and so the same sqlembed) as the driver unless
        # the cluster's images say otherwise through `extra`.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if gpu:
        conf["spark.executor.resource.gpu.amount"] = "1"
        conf["spark.task.resource.gpu.amount"] = str(task_gpu_amount)
        if DISCOVERY_SCRIPT.is_file():
            conf["spark.executor.resource.gpu.discoveryScript"] = str(DISCOVERY_SCRIPT)
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
