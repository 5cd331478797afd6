"""Vectors match sentence-transformers (the reference a user would otherwise run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from sqlembed.engine.embedder import Embedder
from tests.support.engines import open_engine
from tests.support.texts import varied_texts

pytestmark = pytest.mark.slow

F32 = npt.NDArray[np.float32]


def cosine(a: F32, b: F32) -> F32:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def texts() -> list[str]:
    t = varied_texts()
    assert len(t) >= 300
    return t


@pytest.fixture(scope="module")
def reference(texts: list[str]) -> F32:
    from sentence_transformers import SentenceTransformer

    from sqlembed.engine.build import default_source

    st = SentenceTransformer(str(default_source()), device="cpu")
    return np.asarray(st.encode(texts, batch_size=32), dtype=np.float32)


def _embedder(model_dir: Path, precision: str) -> Embedder:
    return open_engine(model_dir, precision)


def test_corpus_covers_the_hard_cases(texts: list[str], model_dir: Path) -> None:
    tok = _embedder(model_dir, "fp32").tokenizer
    lengths = [len(t) for t in tok.encode(texts).ids]
    assert sum(n == 256 for n in lengths) >= 20, "needs texts truncated at 256 tokens"
    assert any("\u4e00" <= ch <= "\u9fff" for t in texts for ch in t), "needs CJK"
    assert any(ord(ch) > 0x1F000 for t in texts for ch in t), "needs emoji"
    assert any("def " in t for t in texts), "needs code"


def test_fp32_matches_sentence_transformers(texts: list[str], reference: F32, model_dir: Path) -> None:
    ours = _embedder(model_dir, "fp32").embed(texts)
    cos = cosine(ours, reference)
    assert cos.min() >= 0.9999, f"worst fp32 text: {texts[int(cos.argmin())][:80]!r} cos={cos.min():.6f}"


def test_int8_mean_fidelity(texts: list[str], reference: F32, model_dir: Path) -> None:
    cos = cosine(_embedder(model_dir, "int8").embed(texts), reference)
    assert cos.mean() >= 0.99, f"int8 mean cosine {cos.mean():.4f}"


@pytest.mark.xfail(strict=True, reason=(
    "known gap, docs/benchmarks.md: dynamic per-tensor int8 (AVX2, no VNNI) reaches min cosine ~0.96 "
    "on very short texts and some scripts; the issue's target is 0.98"))
def test_int8_min_fidelity(texts: list[str], reference: F32, model_dir: Path) -> None:
    cos = cosine(_embedder(model_dir, "int8").embed(texts), reference)
    assert cos.min() >= 0.98, f"int8 min cosine {cos.min():.4f} on {texts[int(cos.argmin())][:80]!r}"


@pytest.mark.parametrize("precision", [
    "fp32",
    pytest.param("int8", marks=pytest.mark.xfail(strict=True, reason=(
        "known gap, docs/benchmarks.md: dynamic int8 picks one activation scale per batch, so batch "
        "partners move a vector (cosine ~0.99)"))),
])
def test_batch_invariance(texts: list[str], model_dir: Path, precision: str) -> None:
    emb = _embedder(model_dir, precision)
    rng = np.random.default_rng(7)
    batch = [texts[i] for i in rng.choice(len(texts), size=64, replace=False)]
    lengths = [len(t) for t in emb.tokenizer.encode(batch).ids]
    assert max(lengths) - min(lengths) > 100, "the batch must mix lengths so padding is exercised"
    # One forward pass over all 64 (maximal padding) versus each text alone.
    together = emb.embed_tokens(emb.tokenizer.encode(batch).ids)
    alone = np.vstack([emb.embed([t]) for t in batch])
    assert cosine(together, alone).min() >= 0.99999
