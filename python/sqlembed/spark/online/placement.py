"""``placement=spark|auto``: batches go to connected executor tasks; the local engine covers gaps.

``auto`` serves on the local engine while no executor task is connected; ``spark`` waits for one
(up to ``wait_limit_s``, then 503). In both, a batch whose executor is lost mid-flight is rerun
locally, so a worker going away never fails a request.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

from sqlembed.engine.config import EngineSettings
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.placement import Lease, LocalSlot
from sqlembed.spark.online.executor import OnlineTaskConfig
from sqlembed.spark.online.launcher import Launcher
from sqlembed.spark.online.listener import DispatchListener
from sqlembed.spark.online.pool import WorkerPool

log = logging.getLogger(__name__)


class SparkPlacement:
    def __init__(
        self,
        *,
        mode: str,
        local: Embedder,
        session: Any,
        engine: EngineSettings,
        require_gpu: bool = False,
        online_gpu_amount: float = 0.5,
        bind_host: str | None = None,
        bind_port: int = 0,
        timeout_s: float = 10.0,
        wait_limit_s: float = 20.0,
        concurrency: int = 16,
        poll_s: float = 1.0,
        on_overhead: Callable[[float], None] | None = None,
        on_workers: Callable[[int], None] | None = None,
    ) -> None:
        if mode not in ("spark", "auto"):
            raise ValueError(f"SparkPlacement mode must be spark or auto, not {mode!r}")
        self.mode = mode
        self.engine = engine
        self.require_gpu = require_gpu
        self.concurrency = concurrency
        self.wait_limit_s: float | None = wait_limit_s if mode == "spark" else None
        self.poll_s = poll_s
        self._session = session  # spark.session.SessionHolder: get() builds, peek() does not
        self._bind = (bind_host, bind_port)
        self._authkey = secrets.token_bytes(32)
        self.pool = WorkerPool(mode, LocalSlot(local), timeout_s, on_overhead, on_workers)
        self.launcher = Launcher(connected=self.pool.count, task_config=self._task_config, require_gpu=require_gpu,
                                 online_gpu_amount=online_gpu_amount, poll_s=poll_s)
        self.listener = DispatchListener(self.pool, self._authkey, self._admit,
                                         on_hello=lambda h: self.launcher.settled(h.get("wave")))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the batcher's side (engine.placement.Placement)

    def acquire(self, timeout: float) -> Lease | None:
        return self.pool.acquire(timeout)

    def describe(self) -> dict[str, Any]:
        out = self.pool.describe()
        address = self.listener.address
        out["address"] = None if address is None else f"{address[0]}:{address[1]}"
        return out

    def worker_count(self) -> int:
        return self.pool.count()

    # --- lifecycle

    def listen(self, spark: Any) -> None:
        host, port = self._bind
        if host:
            # A name the executors use (a container app's internal name, say) need not be an
            # address of this machine: listen everywhere and tell executors the name.
            bind = "127.0.0.1" if host in ("127.0.0.1", "localhost") else ""
            self.listener.start(host, bind, port)
        else:
            driver = spark.sparkContext.getConf().get("spark.driver.host") or "127.0.0.1"
            self.listener.start(driver, driver, port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sqlembed-dispatch-launcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        spark = None
        failures = seen = 0
        while not self._stop.is_set():
            try:
                if spark is None:
                    spark = self._session.get()
                    self.listen(spark)
                self.launcher.tick(spark)
                # Waves that failed since the last tick count as failures; a quiet tick resets.
                failed_waves, seen = self.launcher.failures - seen, self.launcher.failures
                failures = failures + failed_waves if failed_waves else 0
            except Exception as exc:
                failures += 1
                self.pool.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("online dispatch launcher: %s", self.pool.stats.last_error)
            # Back off on repeated failures (an executor that cannot load the model, say).
            self._stop.wait(min(self.poll_s * (2 ** min(failures, 6)), 60.0))

    def close(self) -> None:
        self._stop.set()
        self.pool.close()
        self.listener.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        spark = self._session.peek()
        if spark is not None:
            self.launcher.cancel_all(spark)

    # --- admission

    def _task_config(self, wave: int) -> OnlineTaskConfig:
        address = self.listener.address
        assert address is not None
        return OnlineTaskConfig(address[0], address[1], self._authkey, wave, self.engine)

    def _admit(self, hello: dict[str, Any]) -> str | None:
        """Why a task cannot serve (None if it can); duplicates are decided where workers register."""
        if hello.get("model_id") != self.engine.model_id:
            return f"executor serves model {hello.get('model_id')!r}, the service serves {self.engine.model_id!r}"
        if self.require_gpu and not hello.get("gpu"):
            return "no GPU assigned to the task (SQLEMBED_SPARK_GPU=true)"
        return None
