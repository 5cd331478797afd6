"""The real `ollama` client and SQL Server's request shapes against a real server (contract E, B4)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import ollama
import pytest

from sqlembed.settings import Settings
from tests.support.engines import open_engine
from tests.support.fake import FakeBackend
from tests.support.server import ServerThread, running, with_settings

pytestmark = pytest.mark.slow


def test_ollama_client_embed(base_url: str) -> None:
    client = ollama.Client(host=base_url)
    one = client.embed(model="all-minilm", input="SQL Server 2025 vector search")
    assert len(one.embeddings) == 1 and len(one.embeddings[0]) == 384
    assert abs(np.linalg.norm(one.embeddings[0]) - 1.0) < 1e-5
    many = client.embed(model="all-minilm:l6-v2", input=["first", "SQL Server 2025 vector search", "third"])
    assert len(many.embeddings) == 3
    # Same text, same vector, whatever its position in the request (contract E1 order).
    np.testing.assert_allclose(many.embeddings[1], one.embeddings[0], atol=1e-6)
    assert many.prompt_eval_count and many.prompt_eval_count > 3
    assert many.total_duration and many.total_duration > 0


def test_ollama_client_legacy_and_discovery(base_url: str) -> None:
    client = ollama.Client(host=base_url)
    legacy = client.embeddings(model="all-minilm", prompt="hello")
    new = client.embed(model="all-minilm", input="hello")
    np.testing.assert_allclose(legacy.embedding, new.embeddings[0], atol=1e-6)
    names = [m.model for m in client.list().models]
    assert "all-minilm" in names and "all-minilm-l6-v2-fp32" in names
    assert httpx.get(base_url + "/api/version").json()["version"]
    assert httpx.head(base_url + "/api/version").status_code == 200
    root = httpx.get(base_url + "/")
    assert root.text == "Ollama is running"


@pytest.mark.parametrize("body", [
    # Contract B4: AI_GENERATE_EMBEDDINGS with API_FORMAT='Ollama' and PARAMETERS merged at top level.
    {"model": "all-minilm", "input": "row text"},
    {"model": "all-minilm", "input": ["row text"]},
    {"model": "all-minilm", "input": "row text", "sql_rest_options": {"retry_count": 3}},
    {"model": "all-minilm", "input": "row text", "options": {"num_ctx": 512}, "keep_alive": "5m",
     "user": "x", "input_type": "query", "truncate": True},
])
def test_sql_server_request_shapes(base_url: str, body: dict[str, object]) -> None:
    r = httpx.post(base_url + "/api/embed", json=body,
                   headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json",
                            "User-Agent": "SQL Server/17.0"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    emb = r.json()["embeddings"]
    assert len(emb) == 1 and len(emb[0]) == 384


def test_dimensions_truncate_and_renormalize(base_url: str) -> None:
    full = httpx.post(base_url + "/api/embed", json={"model": "all-minilm", "input": "abc"}).json()["embeddings"][0]
    short = httpx.post(base_url + "/api/embed",
                       json={"model": "all-minilm", "input": "abc", "dimensions": 64}).json()["embeddings"][0]
    assert len(short) == 64
    expected = np.asarray(full[:64]) / np.linalg.norm(full[:64])
    np.testing.assert_allclose(short, expected, atol=1e-6)


def test_truncation_default_and_refusal(base_url: str) -> None:
    long_text = "word " * 1000
    ok = httpx.post(base_url + "/api/embed", json={"model": "all-minilm", "input": long_text})
    assert ok.status_code == 200
    refused = httpx.post(base_url + "/api/embed", json={"model": "all-minilm", "input": long_text, "truncate": False})
    assert refused.status_code == 400
    assert "context length" in refused.json()["error"]


# --- What real Ollama clients meet beyond embedding: /api/show, /api/ps, `name:latest`, edge cases.

def test_show_ps_and_latest_names_with_the_ollama_client(base_url: str) -> None:
    client = ollama.Client(host=base_url)
    for name in ("all-minilm", "all-minilm:latest"):
        card = client.show(name)
        assert card.modelinfo is not None and card.modelinfo["general.architecture"] == "bert"
        assert card.modelinfo["bert.context_length"] == 256 and card.modelinfo["bert.embedding_length"] == 384
        assert card.modelinfo["general.parameter_count"] > 20_000_000
        assert card.capabilities == ["embedding"] and card.modified_at is not None
        assert card.details is not None and card.details.family == "bert"
    listed = client.list().models
    names = [m.model for m in listed]
    # `ollama list` shows every model with its tag; the untagged names stay for existing clients.
    assert {"all-minilm:latest", "all-minilm", "all-minilm-l6-v2-fp32"} <= set(names)
    assert card.details is not None and listed[0].details is not None
    assert card.details.model_dump() == listed[0].details.model_dump()  # one details, /api/show and /api/tags
    running = client.ps().models
    assert len(running) == 1 and running[0].model in names
    assert running[0].context_length == 256 and running[0].size_vram == 0 and running[0].size
    assert running[0].expires_at is not None and running[0].expires_at.year - dt.date.today().year > 200  # "Forever"
    latest = client.embed(model="all-minilm:latest", input="SQL Server 2025 vector search")
    plain = client.embed(model="all-minilm", input="SQL Server 2025 vector search")
    assert latest.model == "all-minilm:latest"
    np.testing.assert_allclose(latest.embeddings[0], plain.embeddings[0], atol=1e-6)


def test_langchain_ollama_embeddings_validate_and_embed(base_url: str, model_dir: Path) -> None:
    from langchain_ollama import OllamaEmbeddings

    text = "SQL Server 2025 calls sqlembed"
    ref = open_engine(model_dir).embed([text, "second"])
    for name in ("all-minilm:latest", "all-minilm"):
        # validate_model_on_init reads /api/tags: "x:latest" must be listed by that exact name.
        emb = OllamaEmbeddings(model=name, base_url=base_url, validate_model_on_init=True)
        np.testing.assert_allclose(emb.embed_query(text), ref[0], atol=1e-6)
        np.testing.assert_allclose(emb.embed_documents([text, "second"]), ref, atol=1e-6)
    with pytest.raises(ValueError, match="not found"):
        OllamaEmbeddings(model="all-minilm:22m", base_url=base_url, validate_model_on_init=True)


def test_empty_input_is_the_load_request_and_dimensions_zero_is_unset(fake_url: str) -> None:
    url = fake_url + "/api/embed"
    # Ollama's EmbedHandler: no input (missing, null, "", []) answers 200 with no embeddings.
    for body in ({"model": "all-minilm"}, {"model": "all-minilm", "input": None},
                 {"model": "all-minilm", "input": ""}, {"model": "all-minilm", "input": []}):
        r = httpx.post(url, json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["embeddings"] == [] and r.json()["model"] == "all-minilm"
    assert ollama.Client(host=fake_url).embed(model="all-minilm", input=[]).embeddings == []
    # ... but a dimension the model cannot give is still refused.
    assert httpx.post(url, json={"input": [], "dimensions": 385}).status_code == 422
    # "" inside a list is embedded, as Ollama does (the model's [CLS] [SEP] alone), in its place.
    both = httpx.post(url, json={"input": ["a", ""]}).json()["embeddings"]
    alone = httpx.post(url, json={"input": [""]}).json()["embeddings"]
    a = httpx.post(url, json={"input": "a"}).json()["embeddings"]
    assert len(both) == 2 and len(alone) == 1
    np.testing.assert_allclose(both[1], alone[0], atol=1e-6)
    np.testing.assert_allclose(both[0], a[0], atol=1e-6)
    # dimensions 0 is Go's zero value: unset on the Ollama route, still a 400 on OpenAI's.
    zero = httpx.post(url, json={"input": "a", "dimensions": 0})
    assert zero.status_code == 200 and zero.json()["embeddings"] == a
    assert httpx.post(fake_url + "/v1/embeddings", json={"input": "a", "dimensions": 0}).status_code == 400
    # The legacy route: an empty prompt loads the model (EmbeddingsHandler), 200 {"embedding": []}.
    for body in ({"model": "all-minilm", "prompt": ""}, {"model": "all-minilm"}):
        r = httpx.post(fake_url + "/api/embeddings", json=body)
        assert r.status_code == 200 and r.json() == {"embedding": []}


def test_show_names_and_unknown_models(fake_url: str, fake_settings: Settings) -> None:
    # Not strict: any name is served by the loaded model, so /api/show describes it too (a client
    # that checks the model first agrees with /api/embed).
    for body in ({"model": "nomic-embed-text"}, {"name": "all-minilm"}):
        r = httpx.post(fake_url + "/api/show", json=body)
        assert r.status_code == 200 and r.json()["model_info"]["bert.embedding_length"] == 384
    r = httpx.post(fake_url + "/api/show", json={})
    assert r.status_code == 400 and "model" in r.json()["error"]
    with running(with_settings(fake_settings, strict_model=True), backend=FakeBackend()) as srv:
        for name in ("all-minilm", "all-minilm:latest", "all-minilm-l6-v2-fp32:latest", "all-minilm:l6-v2",
                     "sentence-transformers/all-MiniLM-L6-v2:latest"):
            assert httpx.post(srv.url + "/api/show", json={"model": name}).status_code == 200, name
            assert httpx.post(srv.url + "/api/embed", json={"model": name, "input": "a"}).status_code == 200, name
        # The -query suffix and the :latest tag, either order, are the same query prompt name.
        for name in ("all-minilm-query", "all-minilm:latest-query", "all-minilm-query:latest"):
            assert httpx.post(srv.url + "/api/embed", json={"model": name, "input": "a"}).status_code == 200, name
        for name in ("nomic-embed-text", "nomic-embed-text:latest", "all-minilm:l6-v2:latest"):
            r = httpx.post(srv.url + "/api/show", json={"model": name})
            assert r.status_code == 404 and r.json()["error"].startswith(f"model '{name}' not found"), name
            assert httpx.post(srv.url + "/api/embed", json={"model": name, "input": "a"}).status_code == 404
        with pytest.raises(ollama.ResponseError) as err:
            ollama.Client(host=srv.url).show("nomic-embed-text")
        assert err.value.status_code == 404


def test_show_ps_and_the_load_request_wait_for_the_model(fake_settings: Settings) -> None:
    release = threading.Event()
    inner = FakeBackend()

    class SlowWarmup:
        name = "slow"

        def forward(self, ids: Any, mask: Any) -> Any:
            release.wait(30)
            return inner.forward(ids, mask)

        def close(self) -> None:
            inner.close()

    srv = ServerThread(fake_settings, backend=SlowWarmup())
    srv._thread.start()
    srv._started.wait(10)
    try:
        for r in (httpx.get(srv.url + "/api/ps"), httpx.post(srv.url + "/api/show", json={"model": "all-minilm"}),
                  httpx.post(srv.url + "/api/embed", json={"model": "all-minilm"})):
            assert r.status_code == 503 and r.headers["Retry-After"] and r.json()["error"]
    finally:
        release.set()
        srv.stop()
