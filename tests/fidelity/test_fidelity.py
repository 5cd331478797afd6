"""Vectors match sentence-transformers (the reference a user would otherwise run), per precision.

Targets (issue 15): fp32 min cosine >= 0.9999; bf16 min >= 0.999 and top-10 neighbour overlap
>= 0.99; static int8 min >= 0.99, top-10 >= 0.95, and a text's vector never depends on its
batch partners. bf16 is tested where the CPU has native bf16 and skipped, with the reason,
where it has not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from sqlembed.benchmark.corpus import paragraphs
from sqlembed.engine.backend import describe_backend
from sqlembed.engine.cpu import read_cpu_caps
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.store import ModelStore
from tests.support.engines import MODEL, open_engine
from tests.support.texts import varied_texts

pytestmark = pytest.mark.slow

F32 = npt.NDArray[np.float32]
CORPUS_TEXTS = 600
NO_BF16 = pytest.mark.skipif(not read_cpu_caps().bf16, reason=(
    f"bf16 needs a CPU with avx512_bf16 or amx_bf16; this one is {read_cpu_caps().summary()}"))
PRECISIONS = ["fp32", "int8", pytest.param("bf16", marks=NO_BF16)]
# (min cosine on the varied texts, min cosine on corpus paragraphs, top-10 overlap on the corpus)
TARGETS = {"fp32": (0.9999, 0.9999, 0.999), "bf16": (0.999, 0.999, 0.99), "int8": (0.99, 0.99, 0.95)}


def cosine(a: F32, b: F32) -> F32:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def top10_overlap(ours: F32, reference: F32) -> float:
    """Mean share of each text's 10 nearest neighbours (itself excluded) that both agree on."""

    def top(v: F32) -> npt.NDArray[np.intp]:
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        sim = v @ v.T
        np.fill_diagonal(sim, -np.inf)
        return np.argpartition(-sim, 10, axis=1)[:, :10]

    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top(ours), top(reference), strict=True)]))


def _st_encode(texts: list[str]) -> F32:
    from sentence_transformers import SentenceTransformer

    from sqlembed.engine.build import default_source

    st = SentenceTransformer(str(default_source()), device="cpu")
    return np.asarray(st.encode(texts, batch_size=32), dtype=np.float32)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    t = varied_texts()
    assert len(t) >= 300
    return t


@pytest.fixture(scope="module")
def reference(texts: list[str]) -> F32:
    return _st_encode(texts)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return paragraphs(CORPUS_TEXTS)


@pytest.fixture(scope="module")
def corpus_reference(corpus: list[str]) -> F32:
    return _st_encode(corpus)


@pytest.fixture(scope="module")
def engines(model_dir: Path) -> Iterator[dict[str, Embedder]]:
    """One engine per precision, as `auto` serves it (bf16 and int8 on OpenVINO)."""
    opened: dict[str, Embedder] = {}
    yield opened
    for emb in opened.values():
        emb.close()


def _embedder(engines: dict[str, Embedder], model_dir: Path, precision: str) -> Embedder:
    if precision not in engines:
        engines[precision] = open_engine(model_dir, precision, backend="auto")
    return engines[precision]


def test_corpus_covers_the_hard_cases(texts: list[str], model_dir: Path, engines: dict[str, Embedder]) -> None:
    tok = _embedder(engines, model_dir, "fp32").tokenizer
    lengths = [len(t) for t in tok.encode(texts).ids]
    assert sum(n == 256 for n in lengths) >= 20, "needs texts truncated at 256 tokens"
    assert any("\u4e00" <= ch <= "\u9fff" for t in texts for ch in t), "needs CJK"
    assert any(ord(ch) > 0x1F000 for t in texts for ch in t), "needs emoji"
    assert any("def " in t for t in texts), "needs code"


@pytest.mark.parametrize("precision", PRECISIONS)
def test_matches_sentence_transformers(texts: list[str], reference: F32, model_dir: Path,
                                       engines: dict[str, Embedder], precision: str) -> None:
    cos = cosine(_embedder(engines, model_dir, precision).embed(texts), reference)
    worst = texts[int(cos.argmin())][:80]
    assert cos.min() >= TARGETS[precision][0], f"worst {precision} text: {worst!r} cos={cos.min():.6f}"
    assert cos.mean() >= (0.995 if precision == "int8" else 0.9999), f"{precision} mean cosine {cos.mean():.5f}"


@pytest.mark.parametrize("precision", ["int8", pytest.param("bf16", marks=NO_BF16)])
def test_keeps_the_neighbours(corpus: list[str], corpus_reference: F32, model_dir: Path,
                              engines: dict[str, Embedder], precision: str) -> None:
    ours = _embedder(engines, model_dir, precision).embed(corpus)
    cos = cosine(ours, corpus_reference)
    _, min_cos, top10 = TARGETS[precision]
    assert cos.min() >= min_cos, f"{precision} min cosine {cos.min():.5f} on {corpus[int(cos.argmin())][:80]!r}"
    overlap = top10_overlap(ours, corpus_reference)
    assert overlap >= top10, f"{precision} top-10 neighbour overlap {overlap:.4f} over {len(corpus)} paragraphs"


def test_int8_mean_fidelity(texts: list[str], reference: F32, model_dir: Path, engines: dict[str, Embedder]) -> None:
    cos = cosine(_embedder(engines, model_dir, "int8").embed(texts), reference)
    assert cos.mean() >= 0.99, f"int8 mean cosine {cos.mean():.4f}"


def test_int8_min_fidelity(texts: list[str], reference: F32, model_dir: Path, engines: dict[str, Embedder]) -> None:
    """Was a strict xfail (dynamic int8: min 0.96 on very short texts and some scripts)."""
    cos = cosine(_embedder(engines, model_dir, "int8").embed(texts), reference)
    assert cos.min() >= 0.99, f"int8 min cosine {cos.min():.4f} on {texts[int(cos.argmin())][:80]!r}"


@pytest.mark.parametrize("precision", PRECISIONS)
def test_batch_invariance(texts: list[str], model_dir: Path, engines: dict[str, Embedder], precision: str) -> None:
    """A text alone versus inside one maximally padded batch of 64 (int8 was a strict xfail:
    dynamic int8 picked one activation scale per batch, cosine ~0.99).

    Static int8 moves a text by up to ~6e-4 in cosine (1.1e-4 here, 6.2e-4 over 98 corpus texts
    in bench/cpu_peers.py; dynamic int8: 1.3e-2): its non-int8 parts run in bf16, bf16 kernels
    for a [1, n] and a [64, 256] input block their sums differently, and a tiny difference can
    flip an int8 rounding downstream (with those parts in f32 it is exact, at half the speed).
    The partner test below, at one shape, is bit-exact."""
    emb = _embedder(engines, model_dir, precision)
    rng = np.random.default_rng(7)
    batch = [texts[i] for i in rng.choice(len(texts), size=64, replace=False)]
    lengths = [len(t) for t in emb.tokenizer.encode(batch).ids]
    assert max(lengths) - min(lengths) > 100, "the batch must mix lengths so padding is exercised"
    together = emb.embed_tokens(emb.tokenizer.encode(batch).ids)
    alone = np.vstack([emb.embed([t]) for t in batch])
    assert cosine(together, alone).min() >= (0.999 if precision == "int8" else 0.99999)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_partners_do_not_move_a_vector(texts: list[str], model_dir: Path, engines: dict[str, Embedder],
                                       precision: str) -> None:
    """The same text in batches of the same shape with different partners, at different places:
    static activation scales make its vector the same (bit for bit here)."""
    emb = _embedder(engines, model_dir, precision)
    enc = emb.tokenizer.encode(texts).ids
    longest = int(np.argmax([len(e) for e in enc]))
    rng = np.random.default_rng(11)
    for probe in rng.choice(len(texts), size=4, replace=False):
        if probe == longest:
            continue
        others = [k for k in range(len(texts)) if k not in (probe, longest)]
        a, b = rng.choice(others, 14, replace=False), rng.choice(others, 14, replace=False)
        first = emb.embed_tokens([enc[longest], *(enc[k] for k in a), enc[probe]])[-1]
        second = emb.embed_tokens([enc[longest], *(enc[k] for k in b[:7]), enc[probe], *(enc[k] for k in b[7:])])[8]
        assert np.abs(first - second).max() <= 1e-6, f"{precision}: partners moved {texts[probe][:60]!r}"


@pytest.mark.parametrize("precision", ["int8", pytest.param("bf16", marks=NO_BF16)])
def test_served_by_openvino_in_the_precision_asked(model_dir: Path, engines: dict[str, Embedder],
                                                  precision: str) -> None:
    info = describe_backend(_embedder(engines, model_dir, precision).backend)
    assert info["backend"] == "openvino" and info["why"]
    kernels = info["fully_connected_kernels"]
    if precision == "bf16":
        assert info["inference_precision"] == "bf16" and set(kernels) == {"bf16"}
    else:
        assert kernels.get("u8", 0) + kernels.get("i8", 0) >= 30, f"int8 kernels: {kernels}"
        m = ModelStore(model_dir).get(f"{MODEL}-int8")
        assert m.runtime == "openvino" and m.model_file == "model.xml"
        assert m.quantization["smooth_quant_alpha"] == 0.8
        assert m.quantization["calibration_sha256"].startswith("sha256:")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_openvino_runs_at_widths_of_a_multiple_of_16(model_dir: Path, engines: dict[str, Embedder],
                                                    precision: str) -> None:
    """OpenVINO compiles kernels per new shape (~40 ms per int8 one): its batches run at widths of
    a multiple of 16, capped at the model's length. ONNX Runtime (fp32) was 9% slower padded: it
    keeps the longest member's width (docs/benchmarks.md, "Shapes")."""
    emb = _embedder(engines, model_dir, precision)
    top = emb.tokenizer.max_length
    if describe_backend(emb.backend)["backend"] == "openvino":
        assert [emb.padded_width(n) for n in (1, 16, 17, 100, top - 1, top)] == [16, 16, 32, 112, top, top]
    else:
        assert [emb.padded_width(n) for n in (1, 17, top)] == [1, 17, top]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_width_a_batch_runs_at_meets_the_target(texts: list[str], reference: F32, model_dir: Path,
                                                      engines: dict[str, Embedder], precision: str) -> None:
    """Each text at every width a padded batch can have (16 to the model's length in steps of 16,
    and a few odd ones), 32 rows at a time, against sentence-transformers. OpenVINO's generated
    attention kernels gave wrong int8 vectors at exactly width 32 on an AMX CPU (cosine 0.63; every
    other width 0.997), which the int8 backend now avoids (engine/openvino_cpu.py)."""
    from sqlembed.engine.pooling import l2_normalize, pool

    emb = _embedder(engines, model_dir, precision)
    enc = emb.tokenizer.encode(texts).ids
    top = emb.tokenizer.max_length
    worst: dict[int, float] = {}
    for width in [*range(16, top + 1, 16), 17, 31, 33, 65]:
        fits = [i for i, e in enumerate(enc) if len(e) <= width][:96]
        for k in range(0, len(fits), 32):
            rows = fits[k: k + 32]
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, : len(enc[i])], mask[r, : len(enc[i])] = enc[i], 1
            vectors = l2_normalize(pool(emb.backend.forward(ids, mask), mask, emb.manifest.pooling))
            worst[width] = min(worst.get(width, 1.0), float(cosine(vectors, reference[rows]).min()))
    bad = {w: round(c, 4) for w, c in sorted(worst.items()) if c < TARGETS[precision][0]}
    assert not bad, f"{precision}: widths below min cosine {TARGETS[precision][0]}: {bad}"


def test_fp32_on_openvino_matches(texts: list[str], reference: F32, model_dir: Path) -> None:
    """fp32 asked of OpenVINO stays fp32 (its default on a bf16 CPU would be bf16)."""
    emb = open_engine(model_dir, "fp32", backend="openvino")
    try:
        assert describe_backend(emb.backend)["inference_precision"] == "f32"
        assert cosine(emb.embed(texts), reference).min() >= 0.9999
    finally:
        emb.close()
