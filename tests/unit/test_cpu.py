"""CPU capabilities from cpuinfo text, the CPU runtime `auto` picks per precision, and the refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sqlembed.engine import registry
from sqlembed.engine.cpu import (
    CpuCaps,
    choose_cpu_backend,
    inference_precision,
    parse_cpuinfo,
    read_cpu_caps,
)
from sqlembed.engine.store import Manifest
from sqlembed.errors import BackendUnavailable

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2
"""
ZEN4 = "model name\t: AMD EPYC\nflags\t\t: fpu avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni avx512vbmi\n"
ALDER_LAKE = "model name\t: 12th Gen Intel(R) Core(TM) i7-12700\nflags\t\t: fpu avx avx2 fma avx_vnni\n"
HASWELL = "model name\t: Intel(R) Xeon(R) CPU E5-2673 v3\nflags\t\t: fpu sse2 avx avx2 fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"


def caps(text: str) -> CpuCaps:
    return parse_cpuinfo(text)


def test_parses_the_first_processor_and_keeps_only_relevant_flags() -> None:
    c = caps(SAPPHIRE_RAPIDS)
    assert c.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert c.flags == {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
    assert (c.bf16, c.vnni, c.amx, c.known) == (True, True, True, True)
    assert "amx_bf16" in c.summary() and "Platinum" in c.summary()


@pytest.mark.parametrize(("text", "bf16", "vnni"), [
    (ZEN4, True, True),
    (ALDER_LAKE, False, True),
    (HASWELL, False, False),
    (ARM, False, False),
])
def test_bf16_and_vnni_flags(text: str, bf16: bool, vnni: bool) -> None:
    c = caps(text)
    assert (c.bf16, c.vnni) == (bf16, vnni)


def test_unknown_cpu(tmp_path: Path) -> None:
    assert not caps("nothing useful here\n").known
    missing = read_cpu_caps(tmp_path / "no-cpuinfo")
    assert not missing.known and not missing.bf16 and "unknown" in missing.summary()
    (tmp_path / "cpuinfo").write_text(HASWELL)
    assert read_cpu_caps(tmp_path / "cpuinfo").flags == {"avx2"}


def test_the_real_machine_parses() -> None:
    c = read_cpu_caps()
    assert isinstance(c.flags, frozenset)
    assert c.summary()


def test_inference_precision_is_always_explicit() -> None:
    zen4, haswell = caps(ZEN4), caps(HASWELL)
    assert inference_precision("fp32", zen4) == "f32"  # OpenVINO's default on this CPU would be bf16
    assert inference_precision("bf16", zen4) == "bf16"
    assert inference_precision("int8", zen4) == "bf16"
    assert inference_precision("int8", haswell) == "f32"
    with pytest.raises(BackendUnavailable, match="avx512_bf16 or amx_bf16"):
        inference_precision("bf16", haswell)


@pytest.mark.parametrize(("precision", "runtime", "text", "expected", "why"), [
    ("fp32", "onnxruntime", ZEN4, "onnx-cpu", "ONNX Runtime"),
    ("fp32", "onnxruntime", HASWELL, "onnx-cpu", "avx2"),
    ("bf16", "openvino", ZEN4, "openvino", "avx512_bf16"),
    ("bf16", "openvino", SAPPHIRE_RAPIDS, "openvino", "amx_bf16"),
    ("int8", "openvino", ZEN4, "openvino", "full-range s8 weights on avx512_vnni"),
    ("int8", "openvino", ALDER_LAKE, "openvino", "full-range s8 weights on avx_vnni; the rest in f32"),
    ("int8", "openvino", HASWELL, "openvino", "7-bit weights (no VNNI)"),
    ("int8", "onnxruntime", ZEN4, "onnx-cpu", "--precision int8 --force"),
])
def test_auto_picks_by_precision_and_cpu(precision: str, runtime: str, text: str, expected: str, why: str) -> None:
    name, reason = choose_cpu_backend(precision, runtime, caps(text), openvino_importable=True)
    assert name == expected
    assert why in reason


def test_bf16_on_a_cpu_without_it_is_refused() -> None:
    for text in (HASWELL, ALDER_LAKE, ARM):
        with pytest.raises(BackendUnavailable, match="needs a CPU with native bf16") as info:
            choose_cpu_backend("bf16", "openvino", caps(text), openvino_importable=True)
        assert "fp32 or int8" in str(info.value)


def test_openvino_missing_is_a_clear_refusal() -> None:
    for precision in ("bf16", "int8"):
        with pytest.raises(BackendUnavailable, match="pip install"):
            choose_cpu_backend(precision, "openvino", caps(ZEN4), openvino_importable=False)
    assert choose_cpu_backend("fp32", "onnxruntime", caps(ZEN4), openvino_importable=False)[0] == "onnx-cpu"


def _manifest(precision: str, runtime: str, model_file: str = "model.onnx") -> Manifest:
    return Manifest(id=f"m-{precision}", name="m", source="s", source_hash="sha256:x", dimensions=4, max_seq_length=8,
                    pooling="mean", normalize=True, precision=precision, family="bert", parameters=1,
                    input_names=("input_ids", "attention_mask"), runtime=runtime, model_file=model_file)


def test_registry_never_changes_the_precision(tmp_path: Path) -> None:
    zen4, haswell = caps(ZEN4), caps(HASWELL)
    bf16, int8 = _manifest("bf16", "openvino"), _manifest("int8", "openvino", "model.xml")
    assert registry.choose("auto", tmp_path, bf16, caps=zen4)[0] == "openvino"
    assert registry.choose("auto", tmp_path, int8, caps=haswell)[0] == "openvino"
    with pytest.raises(BackendUnavailable, match="native bf16"):
        registry.choose("auto", tmp_path, bf16, caps=haswell)
    with pytest.raises(BackendUnavailable, match="native bf16"):
        registry.choose("openvino", tmp_path, bf16, caps=haswell)
    # ONNX Runtime would run the bf16 graph in fp32, and cannot read the int8 IR.
    for m in (bf16, int8):
        with pytest.raises(BackendUnavailable, match="built for OpenVINO"):
            registry.choose("onnx-cpu", tmp_path, m, caps=zen4)
    # GPU backends compute from the fp32 weights: never for a bf16 or int8 model id.
    for name in ("torch", "tensorrt"):
        with pytest.raises(BackendUnavailable, match="serves fp32 models"):
            registry.choose(name, tmp_path, int8, caps=zen4)
    legacy = _manifest("int8", "onnxruntime")
    assert registry.choose("auto", tmp_path, legacy, caps=zen4)[0] == "onnx-cpu"
    with pytest.raises(BackendUnavailable, match="rebuild"):
        registry.choose("openvino", tmp_path, legacy, caps=zen4)
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        registry.choose("cuda", tmp_path, bf16, caps=zen4)


def test_refusal_at_start_names_the_cpu(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"E5-2673 v3 \[avx2\]"):
        registry.create_backend("auto", tmp_path, threads=1, manifest=_manifest("bf16", "openvino"),
                                caps=caps(HASWELL))


def test_build_refuses_bf16_without_it(tmp_path: Path) -> None:
    from sqlembed.engine.build import build_model
    from sqlembed.engine.store import ModelStore
    from sqlembed.errors import ModelBuildError

    with pytest.raises(ModelBuildError, match="--precision bf16 needs a CPU with native bf16"):
        build_model(ModelStore(tmp_path), precision="bf16", caps=caps(HASWELL))
    assert not any(tmp_path.iterdir()), "nothing is written before the refusal"
    with pytest.raises(ModelBuildError, match="unknown precision"):
        build_model(ModelStore(tmp_path), precision="fp16")


def test_calibration_set_ships_and_is_not_the_evaluation_corpus() -> None:
    from sqlembed.benchmark.corpus import paragraphs
    from sqlembed.engine.build import calibration_texts

    texts = calibration_texts()
    assert len(texts) == 800 and len(set(texts)) == 800
    assert not set(texts) & set(paragraphs())
    short = [t for t in texts if len(t.split()) <= 6]
    assert len(short) >= 100, "short texts (int8's worst case) are part of the calibration"


def test_escaped_lines_round_trip() -> None:
    from sqlembed.engine.build import _unescape

    assert _unescape(r"a\nb\\n c\\") == "a\nb\\n c\\"


def test_auto_logs_the_choice_and_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    (tmp_path / "model.onnx").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="sqlembed.engine.registry"), pytest.raises(Exception):  # noqa: B017
        registry.create_backend("auto", tmp_path, threads=1, manifest=_manifest("fp32", "onnxruntime"),
                                caps=caps(HASWELL))
    assert any("backend auto -> onnx-cpu" in r.message and "avx2" in r.message for r in caplog.records)


def test_full_range_int8_on_a_cpu_without_vnni_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("openvino")
    import dataclasses

    (tmp_path / "model.xml").write_text("<not a model/>")
    m = dataclasses.replace(_manifest("int8", "openvino", "model.xml"), quantization={"overflow_fix": "disable"})
    with caplog.at_level(logging.WARNING, logger="sqlembed.engine.registry"), pytest.raises(Exception):  # noqa: B017
        registry.create_backend("auto", tmp_path, threads=1, manifest=m, caps=caps(HASWELL))
    assert any("may saturate" in r.message and "rebuild" in r.message for r in caplog.records)
