"""The engine a Python worker on an executor holds: opened once per settings, reused by every task
(bulk slices and the online task) that the worker runs, across jobs."""

from __future__ import annotations

import threading

from sqlembed.engine.config import EngineSettings
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.store import Manifest

_ENGINES: dict[EngineSettings, Embedder] = {}
_LOCK = threading.Lock()


def cached_embedder(es: EngineSettings, manifest: Manifest | None = None) -> Embedder:
    """The executor process's one place that opens an engine. ``manifest``: the one the bulk plan
    read on the driver (not read again here)."""
    with _LOCK:
        emb = _ENGINES.get(es)
        if emb is None:
            from sqlembed.engine.opener import open_embedder

            emb = _ENGINES[es] = open_embedder(es, manifest=manifest)
        return emb


def task_gpu() -> str | None:
    """The GPU address Spark assigned to the running task, if any (TaskContext resources)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return None
    gpu = ctx.resources().get("gpu")
    return gpu.addresses[0] if gpu is not None and gpu.addresses else None


def task_engine(es: EngineSettings, manifest: Manifest | None = None) -> tuple[Embedder, str | None]:
    """The worker's engine for this task, on the task's GPU when Spark gave it one."""
    gpu = task_gpu()
    return cached_embedder(es.with_device(gpu), manifest), gpu
