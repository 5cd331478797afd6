"""GPU backend logic that needs no GPU: cache keys, profiles, fallback order, OOM splitting."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from sqlembed.engine.gpu_common import (
    Availability,
    choose_backend,
    engine_cache_key,
    engine_path,
    find_engine,
    gpu_precision_refusal,
    optimization_profile,
    split_on_oom,
)
from sqlembed.errors import BackendUnavailable


def test_engine_key_names_model_trt_and_gpu() -> None:
    key = engine_cache_key("sha256:" + "ab" * 32, "10.13.0.35", (8, 0))
    assert key == "abababababababab-trt10.13.0.35-sm80"
    assert engine_cache_key("sha256:" + "ab" * 32, "11.0.0", (9, 0)) != key


def test_missing_engine_error_names_both_keys_and_the_command(tmp_path: Path) -> None:
    other = engine_path(tmp_path, "abababababababab-trt10.13.0.35-sm80")
    other.parent.mkdir()
    other.write_bytes(b"plan")
    wanted = "abababababababab-trt10.13.0.35-sm90"
    with pytest.raises(BackendUnavailable) as info:
        find_engine(tmp_path, wanted, "all-minilm-l6-v2-fp32")
    msg = str(info.value)
    assert wanted in msg and "sm80" in msg
    assert "sqlembed model build --backend tensorrt --precision fp16 --name all-minilm-l6-v2" in msg
    assert find_engine(tmp_path, "abababababababab-trt10.13.0.35-sm80", "m-fp32") == other


def test_profile() -> None:
    p = optimization_profile(256, 256)
    assert (p.min, p.opt, p.max) == ((1, 1), (64, 128), (256, 256))
    small = optimization_profile(8, 64)
    assert small.opt == (8, 64)
    with pytest.raises(ValueError):
        optimization_profile(0, 10)


@pytest.mark.parametrize(("avail", "expected"), [
    (Availability(True, True, True, False, True), "tensorrt"),
    (Availability(True, True, False, True, True), "tensorrt"),
    (Availability(True, True, False, False, True), "torch"),
    (Availability(False, True, False, False, True), "torch"),
    (Availability(True, False, True, True, True), "onnx-cpu"),
    (Availability(False, True, False, False, False), "onnx-cpu"),
    (Availability(False, False, False, False, False), "onnx-cpu"),
])
def test_fallback_order(avail: Availability, expected: str) -> None:
    name, why = choose_backend(avail)
    assert name == expected and why


def test_fallback_reasons_say_why() -> None:
    assert "TensorRT is not installed" in choose_backend(Availability(False, True, False, False, True))[1]
    assert "no CUDA GPU" in choose_backend(Availability(True, False, False, False, True))[1]
    assert "SQLEMBED_BUILD_ON_START" in choose_backend(Availability(True, True, False, True, True))[1]


def test_gpu_backends_serve_fp32_models_only() -> None:
    assert gpu_precision_refusal("tensorrt", "fp32") is None
    for precision in ("bf16", "int8"):
        why = gpu_precision_refusal("torch", precision)
        assert why is not None and precision in why and "openvino" in why


class FakeOOM(Exception):
    pass


def test_split_on_oom_halves_until_it_fits() -> None:
    calls: list[tuple[int, int]] = []
    retries: list[int] = []

    def run(lo: int, hi: int) -> np.ndarray:
        calls.append((lo, hi))
        if hi - lo > 3:
            raise FakeOOM
        return np.arange(lo, hi, dtype=np.float32)[:, None]

    out = split_on_oom(run, 10, lambda e: isinstance(e, FakeOOM), retries.append)
    assert out[:, 0].tolist() == list(range(10)), "order kept"
    assert retries[0] == 10 and max(hi - lo for lo, hi in calls if (lo, hi) not in [(0, 10)]) <= 5


def test_split_on_oom_gives_up_on_one_row_and_passes_other_errors() -> None:
    with pytest.raises(FakeOOM):
        split_on_oom(lambda lo, hi: (_ for _ in ()).throw(FakeOOM()), 4, lambda e: isinstance(e, FakeOOM))
    with pytest.raises(ValueError):
        split_on_oom(lambda lo, hi: (_ for _ in ()).throw(ValueError()), 4, lambda e: isinstance(e, FakeOOM))


def test_auto_picks_the_cpu_here_and_logs_why(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    import importlib.util

    from sqlembed.engine.registry import create_backend
    from sqlembed.engine.store import ModelStore

    torch_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch_cuda = torch.cuda.is_available()
    if torch_cuda:
        pytest.skip("a CUDA GPU is visible: auto would not pick the CPU (tests/gpu covers that case)")
    store = ModelStore(model_dir)
    m = store.get("all-minilm-l6-v2-fp32")
    caplog.set_level(logging.INFO, logger="sqlembed.engine.registry")
    backend = create_backend("auto", store.path(m.id), threads=1, manifest=m)
    assert backend.name == "onnx-cpu"
    assert "backend auto -> onnx-cpu: no CUDA GPU is visible" in caplog.text
