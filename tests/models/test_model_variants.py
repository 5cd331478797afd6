"""Models users bring: a folder built from the bundled weights with CLS pooling, no Normalize
module and query/passage prompts (as e5 or bge declare them) goes through `sqlembed model build`
and `serve`, and every vector equals sentence-transformers' on the same folder: with
``prompt_name`` for input_type query/passage (request field or model-name suffix), with the
folder's ``default_prompt_name`` when none is given. The manifest, /api/tags and /v1/models say
what the model is."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from sqlembed.settings import Settings
from tests.support.server import ServerThread, running, with_settings
from tests.support.texts import varied_texts

pytestmark = pytest.mark.slow
NAME = "minilm-cls-prompts"
PROMPTS = {"query": "query: ", "passage": "passage: "}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sqlembed.engine.build import default_source

    src = tmp_path_factory.mktemp("variant") / NAME
    shutil.copytree(default_source(), src)
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (src / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    modules = [m for m in json.loads((src / "modules.json").read_text()) if not m["type"].endswith("Normalize")]
    (src / "modules.json").write_text(json.dumps(modules))
    st_cfg = json.loads((src / "config_sentence_transformers.json").read_text())
    st_cfg.update(prompts=PROMPTS, default_prompt_name="passage")
    (src / "config_sentence_transformers.json").write_text(json.dumps(st_cfg))
    return src


@pytest.fixture(scope="module")
def store(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("variant-store")
    p = subprocess.run([sys.executable, "-m", "sqlembed", "--model-dir", str(root), "model", "build", "--source",
                        str(folder), "--name", NAME], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "cls" in p.stdout and "+normalize" not in p.stdout, p.stdout
    return root


@pytest.fixture(scope="module")
def st_model(folder: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


@pytest.fixture(scope="module")
def server(base_settings: Settings, store: Path) -> Iterator[ServerThread]:
    settings = with_settings(base_settings, model_dir=store, model=NAME, model_aliases=NAME, build_on_start=False)
    with running(settings) as srv:
        yield srv


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


def _ollama(srv: ServerThread, texts: list[str], **kw: Any) -> np.ndarray:
    r = httpx.post(srv.url + "/api/embed", json={"model": NAME, "input": texts, **kw}, timeout=120)
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["embeddings"], dtype=np.float32)


def test_manifest_records_pooling_normalization_and_prompts(store: Path) -> None:
    manifest = json.loads((store / f"{NAME}-fp32" / "manifest.json").read_text())
    assert (manifest["pooling"], manifest["normalize"], manifest["dimensions"]) == ("cls", False, 384)
    assert manifest["prompts"] == PROMPTS and manifest["default_prompt_name"] == "passage"


def test_vectors_equal_sentence_transformers_for_every_prompt_choice(server: ServerThread, st_model: Any) -> None:
    texts = varied_texts()[::4]
    cases = [
        ({"input_type": "query"}, {"prompt_name": "query"}),
        ({"input_type": "passage"}, {"prompt_name": "passage"}),
        ({"input_type": "document"}, {"prompt_name": "passage"}),
        ({}, {}),  # the folder's default_prompt_name (passage) applies
    ]
    for ours_kw, st_kw in cases:
        ours = _ollama(server, texts, **ours_kw)
        ref = np.asarray(st_model.encode(texts, batch_size=32, **st_kw), dtype=np.float32)
        assert _cos(ours, ref).min() >= 0.9999, (ours_kw, _cos(ours, ref).min())
        # No Normalize module: the raw CLS vectors, not unit length.
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(ref, axis=1), rtol=1e-3)
    plain = _ollama(server, texts[:5], input_type="query")
    assert not np.allclose(plain, _ollama(server, texts[:5], input_type="passage")), "the prompt matters"


def test_a_model_name_suffix_chooses_the_prompt(server: ServerThread, st_model: Any) -> None:
    """AI_GENERATE_EMBEDDINGS can only pass a model name: MODEL = N'<model>-query' for a search model."""
    texts = ["how do I rotate keys?", "vector search in SQL Server"]
    ref = np.asarray(st_model.encode(texts, prompt_name="query"), dtype=np.float32)
    r = httpx.post(server.url + "/v1/embeddings", json={"model": f"{NAME}-query", "input": texts})
    got = np.asarray([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
    assert r.json()["model"] == f"{NAME}-query" and _cos(got, ref).min() >= 0.9999
    rows = httpx.post(server.url + "/v1/sqlserver/embed",
                      json={"model": NAME, "input_type": "query", "inputs": [{"id": i, "text": t}
                                                                           for i, t in enumerate(texts)]}).json()
    got = np.asarray([e["embedding"] for e in rows["embeddings"]], dtype=np.float32)
    assert _cos(got, ref).min() >= 0.9999


def test_prompt_tokens_count_against_the_length(server: ServerThread, st_model: Any) -> None:
    long = "word " * 400
    r = httpx.post(server.url + "/api/embed", json={"model": NAME, "input": long, "input_type": "query"})
    ref = np.asarray(st_model.encode([long], prompt_name="query"), dtype=np.float32)
    assert _cos(np.asarray(r.json()["embeddings"], dtype=np.float32), ref).min() >= 0.9999
    # 400 words + "query", ":" + [CLS] [SEP] = 404 tokens, 256 kept.
    assert int(r.headers["x-sqlembed-truncated-tokens"]) == 404 - 256


def test_discovery_routes_describe_the_model(server: ServerThread) -> None:
    tag = httpx.get(server.url + "/api/tags").json()["models"][0]["details"]
    assert (tag["pooling"], tag["normalize"], tag["embedding_length"], tag["prompts"]) == ("cls", False, 384, PROMPTS)
    model = httpx.get(server.url + "/v1/models").json()["data"][0]["sqlembed"]
    assert (model["pooling"], model["normalize"], model["dimensions"], model["prompts"]) == ("cls", False, 384, PROMPTS)
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["prompts"] == PROMPTS and ready["dimensions"] == 384
