"""The one place that names concrete backends; each is imported inside a function so a CPU
install never needs CUDA, torch or TensorRT."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from sqlembed.engine.backend import Backend
from sqlembed.engine.gpu_common import Availability, choose_backend, engine_path
from sqlembed.engine.store import Manifest
from sqlembed.errors import BackendUnavailable

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx-cpu", "torch", "tensorrt")


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def availability(model_dir: Path, manifest: Manifest | None, *, build_on_start: bool = False) -> Availability:
    cuda = _cuda_available()
    trt = importlib.util.find_spec("tensorrt") is not None
    exists = False
    if cuda and trt and manifest is not None:
        from sqlembed.engine.tensorrt_gpu import current_key

        exists = engine_path(model_dir, current_key(manifest)).is_file()
    return Availability(tensorrt_importable=trt, cuda_available=cuda, engine_exists=exists,
                        build_on_start=build_on_start, torch_importable=importlib.util.find_spec("torch") is not None)


def create_backend(name: str, model_dir: Path, *, threads: int, spin: bool = False, manifest: Manifest | None = None,
                   device: str | None = None, build_on_start: bool = False) -> Backend:
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        name, why = choose_backend(availability(model_dir, manifest, build_on_start=build_on_start))
        log.info("backend auto -> %s: %s", name, why)
    if name in ("torch", "tensorrt") and manifest is None:
        raise BackendUnavailable(f"the {name} backend needs the model's manifest")
    if name == "tensorrt":
        from sqlembed.engine.tensorrt_gpu import TensorRTBackend, build_engine, current_key

        assert manifest is not None
        index = int((device or "0").removeprefix("cuda:"))
        if build_on_start and not engine_path(model_dir, current_key(manifest, index)).is_file():
            build_engine(model_dir, manifest, device=index)
        return TensorRTBackend(model_dir, manifest, device=index)
    if name == "torch":
        from sqlembed.engine.build import resolve_source
        from sqlembed.engine.st_config import read_config
        from sqlembed.engine.torch_backend import TorchBackend

        assert manifest is not None
        cfg = read_config(resolve_source(manifest.source))
        target = device if device is not None else ("cuda" if _cuda_available() else "cpu")
        return TorchBackend(cfg.transformer_dir, device=target, pooling=manifest.pooling, normalize=manifest.normalize)
    from sqlembed.engine.onnx_cpu import OnnxCpuBackend

    log.info("backend onnx-cpu (%d threads) for %s", threads, model_dir.name)
    return OnnxCpuBackend(model_dir / "model.onnx", threads=threads, spin=spin)
