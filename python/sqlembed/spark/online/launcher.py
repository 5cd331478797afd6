"""Keeps one online task per executor: compares the executor count with the connected tasks once a
second and launches a "wave" job (its own job group, the online fair-scheduler pool) when one is
missing. Spark keeps owning placement, GPUs, retries and executor churn."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlembed.errors import summary
from sqlembed.spark.online.executor import OnlineTaskConfig, serve_online

log = logging.getLogger(__name__)

ONLINE_POOL = "sqlembed-online"


@dataclass
class Wave:
    id: int
    tasks: int
    settled: int = 0
    finished: bool = False

    @property
    def group(self) -> str:
        return f"sqlembed-online-{self.id}"

    @property
    def launching(self) -> bool:
        return not self.finished and self.settled < self.tasks


def executor_count(spark: Any, timeout: float = 5.0) -> int:
    """Executors of this application, from Spark's monitoring REST API (a documented interface);
    local mode runs its tasks in the driver's one executor."""
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return 1
    url = sc.uiWebUrl
    if not url:
        raise RuntimeError("spark.ui.enabled is false: the executor count comes from the Spark UI's REST API")
    with urllib.request.urlopen(f"{url}/api/v1/applications/{sc.applicationId}/executors",  # noqa: S310  # nosec B310
                                timeout=timeout) as resp:
        executors = json.load(resp)
    return sum(1 for e in executors if e.get("id") != "driver" and e.get("isActive", True))


class Launcher:
    def __init__(self, *, connected: Callable[[], int], task_config: Callable[[int], OnlineTaskConfig],
                 require_gpu: bool, online_gpu_amount: float, poll_s: float = 1.0) -> None:
        self.connected = connected
        self.task_config = task_config
        self.require_gpu = require_gpu
        self.online_gpu_amount = online_gpu_amount
        self.poll_s = poll_s
        self.waves: list[Wave] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.failures = 0
        self.last_error: str | None = None

    def settled(self, wave_id: Any) -> None:
        """A task of ``wave_id`` said hello (admitted or not): the wave is no longer all launching."""
        with self._lock:
            for w in self.waves:
                if w.id == wave_id:
                    w.settled += 1

    def tick(self, spark: Any) -> None:
        want = executor_count(spark)
        with self._lock:
            launching = any(w.launching for w in self.waves)
        if want > self.connected() and not launching:
            self.launch(spark, want)

    def launch(self, spark: Any, tasks: int) -> None:
        with self._lock:
            wave = Wave(next(self._ids), tasks)
            self.waves = [w for w in self.waves if not w.finished] + [wave]
        cfg = self.task_config(wave.id)
        threading.Thread(target=self._run, args=(spark, wave, cfg), name=f"sqlembed-wave-{wave.id}",
                         daemon=True).start()

    def _run(self, spark: Any, wave: Wave, cfg: OnlineTaskConfig) -> None:
        sc = spark.sparkContext
        try:
            sc.setJobGroup(wave.group, "sqlembed online batches", interruptOnCancel=True)
            sc.setLocalProperty("spark.scheduler.pool", ONLINE_POOL)
            rdd = sc.parallelize(range(wave.tasks), wave.tasks)
            if self.require_gpu and not sc.master.startswith("local"):
                rdd = rdd.withResources(self._online_profile())
            served = rdd.mapPartitionsWithIndex(lambda i, rows: serve_online(i, rows, cfg)).collect()
            log.info("online wave %d ended (%d batches served)", wave.id, sum(served))
        except Exception as exc:
            text = summary(exc, limit=500)
            with self._lock:
                self.last_error = text
                self.failures += 1
            log.warning("online wave %d failed: %s", wave.id, text)
        finally:
            with self._lock:
                wave.finished = True

    def _online_profile(self) -> Any:
        # Stage-level task resources (standalone, no dynamic allocation, Spark >= 3.4): the online
        # task takes a share of the GPU so a bulk task still fits beside it on the same executor.
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        req = TaskResourceRequests().cpus(1).resource("gpu", self.online_gpu_amount)
        return ResourceProfileBuilder().require(req).build

    def cancel_all(self, spark: Any) -> None:
        with self._lock:
            groups = [w.group for w in self.waves if not w.finished]
        for group in groups:
            try:
                spark.sparkContext.cancelJobGroup(group)
            except Exception as exc:  # the session may be stopping too
                log.debug("cancelling %s: %s", group, exc)
