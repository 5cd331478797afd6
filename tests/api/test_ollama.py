"""The real `ollama` client and SQL Server's request shapes against a real server (contract E, B4)."""

from __future__ import annotations

import httpx
import numpy as np
import ollama
import pytest

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
