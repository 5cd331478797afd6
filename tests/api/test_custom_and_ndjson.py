"""The configurable adapter round-trips a custom shape; NDJSON streaming delivers every id once."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from sqlembed.api.custom import parse_path, select
from sqlembed.settings import Settings
from tests.support.fake import FakeBackend
from tests.support.server import ServerThread, running, with_settings

FORMAT = {
    "name": "docs",
    "path": "/custom/docs/embed",
    "texts": "$.documents[*].body",
    "ids": "$.documents[*].key",
    "response": {"vectors": [{"key": "{id}", "position": "{index}", "values": "{embedding}"}],
                 "meta": {"model": "{model}", "size": "{dimensions}", "tokens": "{tokens}", "source": "sqlembed"}},
}


def test_jsonpath_selectors() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}, {"c": 3}], "d": {"e": "x"}}
    assert select(doc, parse_path("$.a[*].b")) == [1, 2]
    assert select(doc, parse_path("$.a[1].b")) == [2]
    assert select(doc, parse_path("$.d.e")) == ["x"]
    assert select(doc, parse_path("$..b")) == [1, 2], "recursive descent (jsonpath-ng)"
    assert select(doc, parse_path("$.missing[*].x")) == []
    for bad in ("a.b", "$.a[?(@.b)]", "$.a[", ""):
        with pytest.raises(ValueError):
            parse_path(bad)


@pytest.fixture(scope="module")
def custom_server(fake_settings: Settings) -> Iterator[ServerThread]:
    with running(with_settings(fake_settings, custom_formats=json.dumps([FORMAT])), backend=FakeBackend()) as srv:
        yield srv


def test_custom_shape_round_trips(custom_server: ServerThread) -> None:
    body = {"documents": [{"key": "a-1", "body": "first"}, {"key": 7, "body": "second text"}], "extra": True}
    r = httpx.post(custom_server.url + "/custom/docs/embed", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [v["key"] for v in out["vectors"]] == ["a-1", 7] and [v["position"] for v in out["vectors"]] == [0, 1]
    assert out["meta"]["size"] == 384 and out["meta"]["source"] == "sqlembed" and out["meta"]["tokens"] > 0
    ref = httpx.post(custom_server.url + "/api/embed", json={"input": ["first", "second text"]}).json()["embeddings"]
    np.testing.assert_allclose([v["values"] for v in out["vectors"]], ref, atol=1e-6)
    bad = httpx.post(custom_server.url + "/custom/docs/embed", json={"documents": [{"key": 1, "body": ""}]})
    assert bad.status_code == 400 and "non-empty" in bad.json()["error"]
    none = httpx.post(custom_server.url + "/custom/docs/embed", json={"other": []})
    assert none.status_code == 400


def test_bad_custom_config_is_refused(fake_settings: Settings) -> None:
    from sqlembed.run.service import service_app

    for bad in ([{"name": "x", "path": "/v1/embeddings", "texts": "$.t", "response": {}}],
                [{"name": "x", "path": "/custom/x", "texts": "nope", "response": {}}],
                [{"name": "x"}]):
        with pytest.raises(ValueError, match="SQLEMBED_CUSTOM_FORMATS"):
            service_app(with_settings(fake_settings, custom_formats=json.dumps(bad)))


def test_ndjson_streams_every_id_once(fake_url: str) -> None:
    rows = [{"id": i, "text": f"row number {i} about vectors"} for i in range(300)]
    rows[17]["text"] = ""
    with httpx.stream("POST", fake_url + "/v1/sqlserver/embed", json={"inputs": rows},
                      headers={"Accept": "application/x-ndjson"}) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.iter_lines() if line]
    done = lines[-1]
    assert done["done"] is True and done["embedded"] == 299 and done["failed"] == 1
    embedded = [ln["id"] for ln in lines if "embedding" in ln]
    failed = [ln["id"] for ln in lines if "error" in ln]
    assert sorted(embedded) == [i for i in range(300) if i != 17] and len(set(embedded)) == 299
    assert failed == [17]
    one = httpx.post(fake_url + "/v1/sqlserver/embed", json={"inputs": rows[:3]}).json()
    by_id = {ln["id"]: ln["embedding"] for ln in lines if "embedding" in ln}
    np.testing.assert_allclose(by_id[1], one["embeddings"][1]["embedding"], atol=1e-6)
