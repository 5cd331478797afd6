"""Opening the test model the way every entry point does (engine.opener)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlembed.engine.config import EngineSettings
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.opener import open_embedder

MODEL = "all-minilm-l6-v2"


def engine_settings(model_dir: Path, precision: str = "fp32", **kw: Any) -> EngineSettings:
    kw.setdefault("threads", 2)
    kw.setdefault("backend", "auto")  # fp32 on ONNX Runtime, bf16/int8 on OpenVINO (engine/registry.py)
    return EngineSettings(model_dir=model_dir, model=MODEL, precision=precision, **kw)


def open_engine(model_dir: Path, precision: str = "fp32", **kw: Any) -> Embedder:
    return open_embedder(engine_settings(model_dir, precision, **kw))
