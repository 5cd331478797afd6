"""The one place that names concrete backends; each is imported inside a function so a CPU
install never needs CUDA."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlembed.engine.backend import Backend
from sqlembed.errors import BackendUnavailable

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx-cpu")


def create_backend(name: str, model_dir: Path, *, threads: int, spin: bool = False) -> Backend:
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    # GPU backends (TensorRT, torch CUDA) join 'auto' here, ahead of the CPU fallback.
    from sqlembed.engine.onnx_cpu import OnnxCpuBackend

    log.info("backend onnx-cpu (%d threads) for %s", threads, model_dir.name)
    return OnnxCpuBackend(model_dir / "model.onnx", threads=threads, spin=spin)
