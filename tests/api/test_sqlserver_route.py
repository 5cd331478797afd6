"""POST /v1/sqlserver/embed: the pull contract behind sqlembed.embed_rows (docs/api.md)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_ids_echoed_exactly_and_bad_rows_reported(base_url: str) -> None:
    guid = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    body = {"model": "all-minilm", "inputs": [
        {"id": 1, "text": "first row"},
        {"id": "k-2", "text": "second row"},
        {"id": guid, "text": "third row"},
        {"id": 4, "text": ""},
        {"id": 5, "text": None},
        {"id": 6, "text": 12},
        {"id": 7},
        {"text": "no id"},
        {"id": 9007199254740993, "text": "big int id"},
    ]}
    r = httpx.post(base_url + "/v1/sqlserver/embed", json=body,
                   headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == "all-minilm" and out["dimensions"] == 384
    assert out["model_id"] == "all-minilm-l6-v2-fp32", "the id embed_rows stores, precision included"
    assert [e["id"] for e in out["embeddings"]] == [1, "k-2", guid, 9007199254740993]
    assert {e["id"] for e in out["errors"]} == {4, 5, 6, 7, None}
    assert all(e["error"] for e in out["errors"])
    single = httpx.post(base_url + "/api/embed", json={"input": "second row"}).json()["embeddings"][0]
    np.testing.assert_allclose(out["embeddings"][1]["embedding"], single, atol=1e-6)
    assert out["usage"]["prompt_tokens"] > 0


def test_dimensions_and_all_bad(base_url: str) -> None:
    r = httpx.post(base_url + "/v1/sqlserver/embed", json={"dimensions": 32, "inputs": [{"id": 1, "text": "x"}]})
    assert len(r.json()["embeddings"][0]["embedding"]) == 32
    r = httpx.post(base_url + "/v1/sqlserver/embed", json={"inputs": [{"id": 1, "text": ""}]})
    assert r.status_code == 200 and r.json()["embeddings"] == [] and len(r.json()["errors"]) == 1


@pytest.mark.parametrize("body", [{}, {"inputs": []}, {"inputs": "x"}, {"inputs": [{"id": 1, "text": "a"}] * 2049}])
def test_request_level_errors(base_url: str, body: dict[str, object]) -> None:
    r = httpx.post(base_url + "/v1/sqlserver/embed", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"]
