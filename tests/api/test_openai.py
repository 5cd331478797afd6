"""The real `openai` client (OpenAI and Azure OpenAI) against a real server (contract F)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.support.tiktoken_table import seed_cache

pytestmark = pytest.mark.slow


def test_openai_float_and_base64_agree(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused")
    texts = ["alpha", "a much longer sentence about vector indexes in SQL Server 2025", "γ"]
    f = client.embeddings.create(model="all-minilm", input=texts, encoding_format="float")
    b = client.embeddings.create(model="all-minilm", input=texts, encoding_format="base64")
    # Contract F3: without encoding_format the SDK may ask for base64 and decode it itself.
    d = client.embeddings.create(model="all-minilm", input=texts)
    assert [x.index for x in f.data] == [0, 1, 2]
    assert f.usage.prompt_tokens == f.usage.total_tokens > 0
    for x, y, z in zip(f.data, b.data, d.data, strict=True):
        assert len(x.embedding) == 384
        decoded = np.frombuffer(base64.b64decode(y.embedding), dtype="<f4")  # type: ignore[arg-type]
        np.testing.assert_allclose(x.embedding, decoded, atol=1e-7)
        np.testing.assert_allclose(x.embedding, z.embedding, atol=1e-7)


def test_base64_is_little_endian_float32(base_url: str) -> None:
    r = httpx.post(base_url + "/v1/embeddings",
                   json={"model": "m", "input": "hello", "encoding_format": "base64"}).json()
    raw = base64.b64decode(r["data"][0]["embedding"])
    assert len(raw) == 384 * 4
    le = np.frombuffer(raw, dtype="<f4")
    fl = httpx.post(base_url + "/v1/embeddings", json={"model": "m", "input": "hello"}).json()
    np.testing.assert_allclose(le, fl["data"][0]["embedding"], atol=1e-7)
    assert isinstance(fl["data"][0]["embedding"], list), "contract B4: float arrays unless base64 is asked"


def test_azure_openai_client(base_url: str) -> None:
    client = openai.AzureOpenAI(azure_endpoint=base_url, api_key="unused", api_version="2024-02-01")
    r = client.embeddings.create(model="all-minilm", input="azure route")
    assert len(r.data[0].embedding) == 384
    # Contract B4: the Azure format may omit 'model'; the deployment names it.
    raw = httpx.post(base_url + "/openai/deployments/all-minilm/embeddings?api-version=2023-05-15",
                     json={"input": "azure route"}).json()
    np.testing.assert_allclose(raw["data"][0]["embedding"], r.data[0].embedding, atol=1e-6)


@pytest.mark.parametrize("path", ["/v1/embeddings", "/embeddings", "/openai/v1/embeddings"])
def test_openai_paths_and_sql_server_shapes(base_url: str, path: str) -> None:
    for body in ({"model": "all-minilm", "input": "x"}, {"model": "all-minilm", "input": ["x"]},
                 {"input": "x", "dimensions": 128, "sql_rest_options": {"retry_count": 2}, "input_type": "query"}):
        r = httpx.post(base_url + path, json=body, headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status_code == 200, r.text
        assert len(r.json()["data"][0]["embedding"]) == body.get("dimensions", 384)


def test_models_list(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused")
    ids = [m.id for m in client.models.list()]
    assert {"all-minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"} <= set(ids)


@pytest.fixture
def tiktoken_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(seed_cache(tmp_path / "tiktoken").parent))


def test_langchain_openai_defaults_send_token_ids_and_get_the_text_vectors(base_url: str,
                                                                          tiktoken_offline: None) -> None:
    from langchain_openai import OpenAIEmbeddings

    texts = ["SQL Server 2025 calls sqlembed", "ünïcödé und 日本語", "a longer passage about vector search " * 5]
    sent: list[object] = []

    def record(request: httpx.Request) -> None:
        sent.append(json.loads(request.content)["input"])

    http = httpx.Client(event_hooks={"request": [record]})
    # LangChain's defaults: check_embedding_ctx_length=True, so it tokenizes with tiktoken (cl100k_base).
    lc = OpenAIEmbeddings(model="all-minilm", base_url=base_url + "/v1", api_key="unused",  # type: ignore[arg-type]
                          http_client=http)
    got = np.array(lc.embed_documents(texts))
    query = np.array(lc.embed_query(texts[0]))
    assert sent and all(isinstance(x, list) and isinstance(x[0], list) and isinstance(x[0][0], int) for x in sent), \
        "LangChain sent text: the token-id path is not exercised"
    ref = openai.OpenAI(base_url=base_url + "/v1", api_key="unused").embeddings.create(
        model="all-minilm", input=texts, encoding_format="float")
    want = np.array([d.embedding for d in ref.data])
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(query, want[0], atol=1e-6)


def test_undecodable_token_ids_name_the_langchain_setting(base_url: str) -> None:
    r = httpx.post(base_url + "/v1/embeddings", json={"model": "m", "input": [[9906, 1917], [100_300]]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["param"] == "input" and "check_embedding_ctx_length=False" in err["message"]
