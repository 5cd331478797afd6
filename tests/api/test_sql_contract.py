"""The procedures and the service stay in step: the request embed_rows documents (and builds with
FOR JSON) is accepted by the service, and every JSON path the T-SQL reads exists in the answer."""

from __future__ import annotations

import json
import re

import httpx

from sqlembed.db.sqlfiles import load


def _sql(name: str) -> str:
    return next(f.text for f in load() if f.name == name)


def _documented_request() -> dict[str, object]:
    text = _sql("060_embed_rows.sql")
    m = re.search(r"-- BEGIN REQUEST EXAMPLE\n-- (.*)\n-- END REQUEST EXAMPLE", text)
    assert m, "060_embed_rows.sql documents its request body"
    return json.loads(m.group(1))


def test_embed_rows_request_is_accepted_and_paths_exist(fake_url: str) -> None:
    body = _documented_request()
    text = _sql("060_embed_rows.sql")
    # The FOR JSON in the procedure produces exactly these keys (ids are positions in the run).
    assert "@model AS model, @dims AS dimensions, 'passage' AS input_type" in text
    assert "JSON_QUERY((SELECT seq AS id, txt AS text" in text and "AS inputs" in text
    r = httpx.post(fake_url + "/v1/sqlserver/embed", content=json.dumps(body),
                   headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
    out = r.json()
    # OPENJSON(@response, '$.result.embeddings') WITH (id '$.id', embedding '$.embedding' AS JSON)
    assert "'$.result.embeddings'" in text and "id int '$.id'" in text and "'$.embedding'" in text
    assert [e["id"] for e in out["embeddings"]] == [i["id"] for i in body["inputs"]]  # type: ignore[index]
    assert all(len(e["embedding"]) == body["dimensions"] for e in out["embeddings"])
    assert "'$.result.errors'" in text and out["errors"] == []
    # The model id embed_rows stores comes from GET /readyz ($.result.model).
    assert "JSON_VALUE(@ready, '$.result.model')" in text
    assert httpx.get(fake_url + "/readyz").json()["model"] == "all-minilm-l6-v2-fp32"


def test_embed_text_reads_the_ollama_shape(fake_url: str) -> None:
    text = _sql("050_embed_text.sql")
    assert "@path = N'/api/embed'" in text and "'$.result.embeddings[0]'" in text
    m = re.search(r"JSON_OBJECT\('model': model, 'input': @text, 'dimensions': dimensions,\s+"
                  r"'input_type': @input_type ABSENT ON NULL\)", text)
    assert m
    r = httpx.post(fake_url + "/api/embed", json={"model": "all-minilm", "input": "x", "dimensions": 384})
    assert len(r.json()["embeddings"][0]) == 384


def test_invoke_reads_both_error_shapes(fake_url: str) -> None:
    text = _sql("040_invoke.sql")
    assert "'$.result.error.message'" in text and "'$.result.error'" in text
    ollama = httpx.post(fake_url + "/api/embed", json={"input": 5}).json()
    openai = httpx.post(fake_url + "/v1/sqlserver/embed", json={"inputs": []}).json()
    assert isinstance(ollama["error"], str) and isinstance(openai["error"]["message"], str)
