"""GPU backends against the CPU ONNX reference (marker gpu; skipped without CUDA)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from sqlembed.engine.embedder import Embedder
from tests.support.engines import open_engine
from tests.support.texts import varied_texts

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
MODEL = "all-minilm-l6-v2-fp32"
BACKENDS = ["torch", pytest.param("tensorrt", marks=pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None, reason="needs TensorRT (pip install 'sqlembed[gpu]')"))]


def _emb(model_dir: Path, backend: str) -> Embedder:
    return open_engine(model_dir, backend=backend, device="0" if backend != "onnx-cpu" else None,
                       build_on_start=True)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> tuple[list[str], np.ndarray]:
    texts = varied_texts()
    return texts, _emb(model_dir, "onnx-cpu").embed(texts)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_fidelity_against_cpu(model_dir: Path, reference: tuple[list[str], np.ndarray], backend: str) -> None:
    texts, ref = reference
    emb = _emb(model_dir, backend)
    cos = (emb.embed(texts) * ref).sum(axis=1)
    assert cos.min() >= 0.999, f"{backend}: worst {texts[int(cos.argmin())][:60]!r} {cos.min():.5f}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_invariance(model_dir: Path, reference: tuple[list[str], np.ndarray], backend: str) -> None:
    texts, _ = reference
    emb = _emb(model_dir, backend)
    batch = texts[:64]
    together = emb.embed_tokens(emb.tokenizer.encode(batch).ids)
    alone = np.vstack([emb.embed([t]) for t in batch])
    assert (together * alone).sum(axis=1).min() >= 0.999


def test_oom_splits_and_retries(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    emb = _emb(model_dir, "torch")
    texts = ["a long sentence about vector search in SQL Server " * 20] * 4096
    encoded = emb.tokenizer.encode(texts).ids
    free, total = torch.cuda.mem_get_info()
    # Leave too little memory for one 4,096 x 256 batch, enough for a slice of it.
    torch.cuda.set_per_process_memory_fraction(min(1.0, (total - free + 600 * 2**20) / total))
    try:
        out = emb.embed_tokens(encoded)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert out.shape == (4096, 384) and np.isfinite(out).all()
    assert "splitting it and retrying" in caplog.text
