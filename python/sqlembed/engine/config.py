"""The engine's one settings object: built once at an entry point, frozen, picklable.

The service, the CLI, bulk executor tasks, online dispatch tasks and the benchmarks all describe
the engine they want with an ``EngineSettings`` and open it with ``engine.opener.open_embedder``.
Executors receive the frozen object from the driver; the GPU a Spark task was given travels in
``device`` (``with_device``), never through the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal


def model_id(name: str, precision: str) -> str:
    """A model's folder and id: name plus precision, so precisions never share a vector column."""
    return f"{name}-{precision}"

# The values every process, the settings and the CLI share (the CLI's choices come from these).
DEFAULT_MODEL = "all-minilm-l6-v2"
BackendName = Literal["auto", "onnx-cpu", "openvino", "torch", "tensorrt"]
Precision = Literal["fp32", "int8", "bf16"]
"""What a served model runs in; fp16 exists only inside TensorRT engines (``model build --backend tensorrt``)."""
PlacementMode = Literal["local", "spark", "auto"]
Direction = Literal["right", "left"]
"""Which end of a text too long for the model is cut."""

@dataclass(frozen=True)
class EngineSettings:
    model_dir: Path
    model: str
    precision: str = "fp32"
    backend: str = "auto"
    threads: int = 0
    """Inference threads; 0 means every core of the machine the engine runs on."""
    spin: bool = True
    device: str | None = None
    """A CUDA device ("0", "cuda:1") or "cpu"; None lets the backend choose."""
    max_batch_items: int = 32
    max_batch_tokens: int = 4096
    build_on_start: bool = False

    @property
    def model_id(self) -> str:
        """The model directory / id: name plus precision, so precisions never share a column."""
        return model_id(self.model, self.precision)

    @property
    def model_path(self) -> Path:
        return self.model_dir / self.model_id

    def resolved_threads(self) -> int:
        return self.threads or (os.cpu_count() or 1)

    def with_device(self, device: str | None) -> EngineSettings:
        return self if device is None else replace(self, device=device)

    def with_threads(self, threads: int) -> EngineSettings:
        return replace(self, threads=threads)
