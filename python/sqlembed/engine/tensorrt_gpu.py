"""TensorRT backend and engine builder, written to TensorRT's documented Python API (10.x and 11.x).

Engines are built ahead of time (``sqlembed model build --backend tensorrt``) and cached in the model
directory under a key of model hash + TensorRT version + GPU compute capability; a worker only
deserializes. Precision lives in the graph (an fp16 ONNX graph in a strongly typed network), because
TensorRT 11 removed the FP16 builder flag. I/O buffers are torch CUDA tensors; one execution
context per concurrent caller. Imported only by registry.py / build, inside functions.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.engine.gpu_common import engine_cache_key, engine_path, find_engine, optimization_profile, split_on_oom
from sqlembed.engine.store import Manifest
from sqlembed.errors import BackendUnavailable, ModelBuildError

log = logging.getLogger(__name__)
OUTPUT = "token_embeddings"


def _trt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailable("TensorRT is not installed: pip install 'sqlembed[gpu]' "
                                 "(wheels from https://pypi.nvidia.com)") from e
    return trt


def current_key(manifest: Manifest, device: int = 0) -> str:
    import torch

    trt = _trt()
    return engine_cache_key(manifest.source_hash, trt.__version__, torch.cuda.get_device_capability(device))


def fp16_onnx(src: Path, dst: Path) -> None:
    """An fp16 copy of the graph with float32 inputs/outputs kept (strongly typed networks follow it)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def build_engine(model_dir: Path, manifest: Manifest, *, max_batch: int = 256, workspace_gb: float = 4.0,
                 device: int = 0) -> Path:
    trt = _trt()
    key = current_key(manifest, device)
    out = engine_path(model_dir, key)
    out.parent.mkdir(parents=True, exist_ok=True)
    fp16 = out.parent / "model.fp16.onnx"
    fp16_onnx(model_dir / "model.onnx", fp16)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(fp16.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelBuildError(f"TensorRT could not parse {fp16.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    prof = optimization_profile(max_batch, manifest.max_seq_length)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        profile.set_shape(network.get_input(i).name, prof.min, prof.opt, prof.max)
    config.add_optimization_profile(profile)
    cache_file = out.parent / f"{key}.timing-cache"
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelBuildError("TensorRT failed to build the engine (see the TensorRT log above)")
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.rename(out)
    cache_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    fp16.unlink(missing_ok=True)
    log.info("TensorRT engine %s built (profile %s)", out.name, prof)
    return out


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model_dir: Path, manifest: Manifest, *, device: int = 0) -> None:
        import torch

        trt = _trt()
        self._torch = torch
        torch.cuda.set_device(device)
        self.device = torch.device(f"cuda:{device}")
        key = current_key(manifest, device)
        plan = find_engine(model_dir, key, manifest.id)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if self._engine is None:
            raise BackendUnavailable(f"TensorRT could not load {plan.name}; rebuild it: "
                                     "sqlembed model build --backend tensorrt --precision fp16")
        self._inputs = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)
                        if self._engine.get_tensor_mode(self._engine.get_tensor_name(i)) == trt.TensorIOMode.INPUT]
        self._contexts: list[Any] = []
        self._lock = threading.Lock()
        self.max_batch = int(self._engine.get_tensor_profile_shape(self._inputs[0], 0)[2][0])
        log.info("TensorRT engine %s on %s (max batch %d)", plan.name, self.device, self.max_batch)

    def _context(self) -> Any:
        with self._lock:
            return self._contexts.pop() if self._contexts else self._engine.create_execution_context()

    def _release(self, ctx: Any) -> None:
        with self._lock:
            self._contexts.append(ctx)

    def _run(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        torch = self._torch
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        ctx = self._context()
        stream = torch.cuda.Stream(device=self.device)
        try:
            with torch.cuda.stream(stream):
                keep = []
                for name in self._inputs:
                    t = torch.from_numpy(feeds[name]).pin_memory().to(self.device, non_blocking=True)
                    keep.append(t)
                    ctx.set_input_shape(name, tuple(t.shape))
                    ctx.set_tensor_address(name, t.data_ptr())
                out = torch.empty(tuple(ctx.get_tensor_shape(OUTPUT)), dtype=torch.float32, device=self.device)
                ctx.set_tensor_address(OUTPUT, out.data_ptr())
                if not ctx.execute_async_v3(stream.cuda_stream):
                    raise RuntimeError("TensorRT execution failed")
                result = out.cpu()
            stream.synchronize()
            return np.asarray(result.numpy(), dtype=np.float32)
        finally:
            self._release(ctx)

    def forward(self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
                ) -> npt.NDArray[np.float32]:
        torch = self._torch
        # Batches beyond the engine's profile, or beyond memory, are split rather than failed.
        chunks = [self._split(input_ids[i:i + self.max_batch], attention_mask[i:i + self.max_batch], torch)
                  for i in range(0, len(input_ids), self.max_batch)]
        return np.concatenate(chunks, axis=0)

    def _split(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64], torch: Any) -> npt.NDArray[np.float32]:
        return split_on_oom(lambda lo, hi: self._run(ids[lo:hi], mask[lo:hi]), len(ids),
                            lambda e: isinstance(e, torch.cuda.OutOfMemoryError), lambda n: torch.cuda.empty_cache())

    def close(self) -> None:
        with self._lock:
            self._contexts.clear()
        del self._engine
