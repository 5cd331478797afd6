"""GPU backend decisions that need no GPU library: testable anywhere.

Engine cache keys, optimization profiles, the `auto` fallback order and the split-on-OOM retry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from sqlembed.errors import BackendUnavailable

ENGINE_DIR = "engines"
T = TypeVar("T")


def engine_cache_key(source_hash: str, trt_version: str, compute_capability: tuple[int, int]) -> str:
    """A TensorRT plan is valid only for the model, the TensorRT version and the GPU architecture
    it was built for: all three are in the file name."""
    digest = source_hash.removeprefix("sha256:")[:16]
    version = re.sub(r"[^0-9.]", "", trt_version)
    return f"{digest}-trt{version}-sm{compute_capability[0]}{compute_capability[1]}"


def engine_path(model_dir: Path, key: str) -> Path:
    return model_dir / ENGINE_DIR / f"{key}.plan"


def find_engine(model_dir: Path, key: str, model_id: str) -> Path:
    """The plan for ``key``, or an error naming what exists and the rebuild command."""
    path = engine_path(model_dir, key)
    if path.is_file():
        return path
    existing = sorted(p.stem for p in (model_dir / ENGINE_DIR).glob("*.plan"))
    have = f"engines built for: {', '.join(existing)}" if existing else "no engine is built yet"
    raise BackendUnavailable(
        f"no TensorRT engine for key {key} in {model_dir / ENGINE_DIR} ({have}); rebuild on this GPU with: "
        f"sqlembed model build --backend tensorrt --precision fp16 --name {model_id.rsplit('-', 1)[0]}"
    )


@dataclass(frozen=True)
class Profile:
    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]


def optimization_profile(max_batch: int, max_len: int, typical_len: int = 128, typical_batch: int = 64) -> Profile:
    """Batch 1..max_batch and sequence 1..max_len; tuned at typical sizes clamped into range."""
    if max_batch < 1 or max_len < 1:
        raise ValueError("max_batch and max_len must be >= 1")
    opt = (min(typical_batch, max_batch), min(typical_len, max_len))
    return Profile(min=(1, 1), opt=opt, max=(max_batch, max_len))


@dataclass(frozen=True)
class Availability:
    tensorrt_importable: bool
    cuda_available: bool
    engine_exists: bool
    build_on_start: bool
    torch_importable: bool


def choose_backend(a: Availability) -> tuple[str, str]:
    """(backend, why): TensorRT, else torch CUDA, else ONNX Runtime CPU."""
    if a.cuda_available and a.tensorrt_importable and (a.engine_exists or a.build_on_start):
        why = "a matching engine exists" if a.engine_exists else "no engine yet, building one (SQLEMBED_BUILD_ON_START)"
        return "tensorrt", f"TensorRT is installed and a CUDA GPU is visible; {why}"
    if a.cuda_available and a.torch_importable:
        reason = ("TensorRT is not installed" if not a.tensorrt_importable
                  else "no TensorRT engine for this GPU and SQLEMBED_BUILD_ON_START=false")
        return "torch", f"a CUDA GPU is visible but {reason}: PyTorch CUDA (fp16)"
    reason = "no CUDA GPU is visible" if not a.cuda_available else "PyTorch is not installed"
    return "onnx-cpu", f"{reason}: ONNX Runtime on the CPU"  # the registry refines the CPU choice (engine.cpu)


def gpu_precision_refusal(backend: str, precision: str) -> str | None:
    """Why a GPU backend cannot serve a model precision (None when it can).

    The GPU backends compute from the fp32 graph or weights (TensorRT in fp16, torch CUDA in fp16);
    serving a bf16 or int8 model id with them would change the vectors without the user asking.
    """
    if precision == "fp32":
        return None
    return (f"the {backend} backend serves fp32 models (fp16 on the GPU); precision {precision} is served on the "
            "CPU: use backend auto or openvino, or serve the fp32 model")


def split_on_oom(
    run: Callable[[int, int], npt.NDArray[np.float32]], n: int, is_oom: Callable[[BaseException], bool],
    on_retry: Callable[[int], None] | None = None,
) -> npt.NDArray[np.float32]:
    """Run rows [0, n) with ``run(lo, hi)``; on out-of-memory, halve and retry each half.

    A single row that still does not fit raises: there is nothing left to split.
    """

    def go(lo: int, hi: int) -> list[npt.NDArray[np.float32]]:
        try:
            return [run(lo, hi)]
        except BaseException as exc:
            if not is_oom(exc) or hi - lo <= 1:
                raise
            if on_retry is not None:
                on_retry(hi - lo)
            mid = (lo + hi) // 2
            return go(lo, mid) + go(mid, hi)

    return np.concatenate(go(0, n), axis=0)
