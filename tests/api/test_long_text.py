"""SQLEMBED_LONG_TEXT=chunk-mean: an over-long text is the normalized, token-weighted mean of its
chunks' vectors, whatever route and batch it came in; texts that fit are untouched; off by default."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from sqlembed.benchmark.corpus import paragraphs
from sqlembed.settings import Settings
from tests.support.engines import open_engine
from tests.support.server import running, with_settings

pytestmark = pytest.mark.slow


def _long_text() -> str:
    return "\n\n".join(paragraphs(min_chars=200)[:6])


def test_chunk_mean_is_the_weighted_mean_of_the_chunks(base_settings: Settings, model_dir: Path) -> None:
    engine = open_engine(model_dir)
    text, short = _long_text(), "a short sentence that fits"
    chunks = engine.tokenizer.chunks(text, engine.tokenizer.max_length - 2)
    assert len(chunks) >= 3
    vecs = engine.embed([c.text for c in chunks])
    weights = np.asarray([len(t) for t in engine.tokenize([c.text for c in chunks])], dtype=np.float32)
    ref = (vecs * weights[:, None]).sum(axis=0)
    ref /= np.linalg.norm(ref)
    truncated = engine.embed([text])[0]

    with running(with_settings(base_settings, long_text="chunk-mean")) as srv:
        r = httpx.post(srv.url + "/api/embed", json={"input": text})
        assert r.status_code == 200, r.text
        single = np.asarray(r.json()["embeddings"][0], dtype=np.float32)
        assert r.headers["x-sqlembed-truncated-tokens"] == "0"
        assert r.json()["prompt_eval_count"] == int(weights.sum())
        batch = httpx.post(srv.url + "/v1/embeddings", json={"input": [short, text]}).json()["data"]
        half = httpx.post(srv.url + "/api/embed", json={"input": text, "dimensions": 128}).json()["embeddings"][0]
    assert float(single @ ref) >= 0.9999
    assert float(single @ truncated) < 0.99, "not the truncated vector"
    assert float(np.asarray(batch[1]["embedding"]) @ single) >= 0.9999, "the same vector in a batch"
    assert float(np.asarray(batch[0]["embedding"]) @ engine.embed([short])[0]) >= 0.99999, "short texts untouched"
    cut = ref[:128] / np.linalg.norm(ref[:128])
    assert float(np.asarray(half) @ cut) >= 0.9999


def test_off_by_default_a_long_text_is_truncated(base_url: str, model_dir: Path) -> None:
    engine = open_engine(model_dir)
    r = httpx.post(base_url + "/api/embed", json={"input": _long_text()})
    assert int(r.headers["x-sqlembed-truncated-tokens"]) > 0
    assert float(np.asarray(r.json()["embeddings"][0]) @ engine.embed([_long_text()])[0]) >= 0.9999
