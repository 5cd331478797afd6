"""Truncation control: keep the start (right, default) or the end (left) of an over-long text, per
request or by setting; the number of tokens dropped in x-sqlembed-truncated-tokens; truncate=false
still refuses. The prompt and the special tokens are never what is cut."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from sqlembed.settings import Settings
from tests.support.engines import open_engine
from tests.support.server import running, with_settings

pytestmark = pytest.mark.slow


def _tail_of_exactly(n_tokens: int, model_dir: Path) -> str:
    """A text of exactly n tokens (plus [CLS] [SEP]) made of real words."""
    tok = open_engine(model_dir).tokenizer
    sentence = "the service embeds every row that changed since the last run of the job"
    words = sentence.split()
    out: list[str] = []
    i = 0
    while len(tok.encode([" ".join(out)]).ids[0]) - 2 < n_tokens:
        out.append(words[i % len(words)])
        i += 1
    assert len(tok.encode([" ".join(out)]).ids[0]) - 2 == n_tokens
    return " ".join(out)


def test_left_keeps_the_end_and_right_the_start(base_url: str, model_dir: Path) -> None:
    tail = _tail_of_exactly(254, model_dir)
    head = "filler words at the start that do not fit " * 20
    long = head + tail

    def embed(text: str, **kw: object) -> tuple[np.ndarray, int]:
        r = httpx.post(base_url + "/api/embed", json={"input": text, **kw})
        assert r.status_code == 200, r.text
        return np.asarray(r.json()["embeddings"][0], dtype=np.float32), int(r.headers["x-sqlembed-truncated-tokens"])

    left, dropped_left = embed(long, truncation_direction="left")
    right, dropped_right = embed(long)
    just_tail, none = embed(tail)
    assert none == 0 and dropped_left == dropped_right > 100
    assert float(left @ just_tail) >= 0.9999, "left truncation kept exactly the last 254 tokens"
    assert float(right @ just_tail) < 0.99
    r = httpx.post(base_url + "/v1/embeddings", json={"input": [long, "short"], "truncation_direction": "left"})
    assert int(r.headers["x-sqlembed-truncated-tokens"]) == dropped_left
    assert float(np.asarray(r.json()["data"][0]["embedding"], dtype=np.float32) @ just_tail) >= 0.9999
    bad = httpx.post(base_url + "/api/embed", json={"input": "x", "truncation_direction": "middle"})
    assert bad.status_code == 400 and "truncation_direction" in bad.json()["error"]
    refused = httpx.post(base_url + "/api/embed", json={"input": long, "truncate": False})
    assert refused.status_code == 400


def test_the_direction_is_a_setting_too(base_settings: Settings, model_dir: Path) -> None:
    tail = _tail_of_exactly(254, model_dir)
    with running(with_settings(base_settings, truncation_direction="left")) as srv:
        a = httpx.post(srv.url + "/api/embed", json={"input": "cut me " * 100 + tail}).json()["embeddings"][0]
        b = httpx.post(srv.url + "/api/embed", json={"input": tail}).json()["embeddings"][0]
        assert float(np.dot(a, b)) >= 0.9999
