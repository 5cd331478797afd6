"""The torch backend's code path on the CPU (fp32): same model load, on-device pooling and
normalization as on CUDA, checked against the ONNX export. tests/gpu runs it in fp16 on a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.engines import open_engine
from tests.support.texts import varied_texts

pytestmark = pytest.mark.slow


def test_torch_cpu_matches_onnx(model_dir: Path) -> None:
    texts = varied_texts()[::5]
    onnx = open_engine(model_dir, backend="onnx-cpu").embed(texts)
    torch_emb = open_engine(model_dir, backend="torch", device="cpu")
    assert torch_emb.backend.name == "torch-cpu"
    ours = torch_emb.embed(texts)
    cos = (ours * onnx).sum(axis=1)
    assert cos.min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
