"""The one place that names concrete backends; each is imported inside a function so a CPU
install never needs CUDA, torch or TensorRT."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from sqlembed.engine.backend import Backend
from sqlembed.engine.cpu import CpuCaps, choose_cpu_backend, read_cpu_caps
from sqlembed.engine.gpu_common import Availability, choose_backend, engine_path, gpu_precision_refusal
from sqlembed.engine.store import Manifest
from sqlembed.errors import BackendUnavailable

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx-cpu", "openvino", "torch", "tensorrt")


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


def _openvino_importable() -> bool:
    return importlib.util.find_spec("openvino") is not None


def choose(name: str, model_dir: Path, manifest: Manifest | None, *, caps: CpuCaps,
           build_on_start: bool = False) -> tuple[str, str]:
    """(backend, why) for a requested backend name: ``auto`` resolved, explicit ones checked
    against the model's precision and runtime. The precision is never changed."""
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    precision = manifest.precision if manifest is not None else "fp32"
    runtime = manifest.runtime if manifest is not None else "onnxruntime"
    mid = manifest.id if manifest is not None else model_dir.name
    if name == "auto":
        if precision == "fp32":
            name, why = choose_backend(availability(model_dir, manifest, build_on_start=build_on_start))
            if name != "onnx-cpu":
                return name, why
            cpu_name, cpu_why = choose_cpu_backend(precision, runtime, caps, openvino_importable=_openvino_importable())
            return cpu_name, f"{why.split(':')[0]}; {cpu_why}"
        name, why = choose_cpu_backend(precision, runtime, caps, openvino_importable=_openvino_importable())
        return name, f"{why} (precision {precision} is served on the CPU)"
    if name in ("torch", "tensorrt"):
        if manifest is None:
            raise BackendUnavailable(f"the {name} backend needs the model's manifest")
        refusal = gpu_precision_refusal(name, precision)
        if refusal:
            raise BackendUnavailable(refusal)
        return name, "asked for"
    if name == "onnx-cpu":
        if runtime != "onnxruntime":
            raise BackendUnavailable(
                f"model {mid} ({precision}) is built for OpenVINO and ONNX Runtime would not run it as {precision}: "
                "use backend openvino or auto")
        return name, f"asked for; CPU {caps.summary()}"
    # openvino
    if not _openvino_importable():
        raise BackendUnavailable("the openvino backend needs OpenVINO: pip install 'sqlembed[server]' "
                                 "(or pip install openvino)")
    if runtime == "onnxruntime" and precision != "fp32":
        raise BackendUnavailable(f"model {mid} is ONNX Runtime dynamic int8 (built before static int8): rebuild "
                                 "it for OpenVINO with: sqlembed model build --precision int8 --force, or use onnx-cpu")
    if precision == "bf16" and not caps.bf16:
        from sqlembed.engine.cpu import bf16_refusal

        raise BackendUnavailable(bf16_refusal(caps))
    return name, f"asked for; CPU {caps.summary()}"


def create_backend(name: str, model_dir: Path, *, threads: int, spin: bool = False, manifest: Manifest | None = None,
                   device: str | None = None, build_on_start: bool = False, caps: CpuCaps | None = None) -> Backend:
    """The backend ``name`` names for the model in ``model_dir``; ``caps`` (CPU capabilities) is for tests."""
    caps = caps if caps is not None else read_cpu_caps()
    requested = name
    name, why = choose(name, model_dir, manifest, caps=caps, build_on_start=build_on_start)
    if requested == "auto":
        log.info("backend auto -> %s: %s", name, why)
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
    precision = manifest.precision if manifest is not None else "fp32"
    model_file = model_dir / (manifest.model_file if manifest is not None else "model.onnx")
    if name == "openvino":
        from sqlembed.engine.openvino_cpu import OpenVinoBackend

        if manifest is not None and manifest.quantization.get("overflow_fix") == "disable" and not caps.vnni:
            log.warning("%s was quantized with full-range int8 weights on a CPU with VNNI; this CPU has none and "
                        "its int8 sums may saturate: rebuild it here (sqlembed model build --precision int8 --force)",
                        manifest.id)

        ov_backend = OpenVinoBackend(model_file, threads=threads, precision=precision, caps=caps, reason=why)
        log.info("backend openvino (%d threads, %s inference, fully connected kernels %s) for %s; CPU %s",
                 threads, ov_backend.describe()["inference_precision"], ov_backend.kernels(), model_dir.name,
                 caps.summary())
        return ov_backend
    from sqlembed.engine.onnx_cpu import OnnxCpuBackend

    log.info("backend onnx-cpu (%d threads) for %s; CPU %s", threads, model_dir.name, caps.summary())
    return OnnxCpuBackend(model_file, threads=threads, spin=spin, precision=precision, cpu=caps.summary(), reason=why)
