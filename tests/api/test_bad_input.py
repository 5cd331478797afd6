"""Contract E4/F4/A8: bad input gets the protocol's error shape and a 4xx; the server keeps serving."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from sqlembed.settings import Settings
from tests.support.fake import FakeBackend
from tests.support.server import ServerThread, running, with_settings

ROUTES = {"ollama": ("/api/embed", "input"), "openai": ("/v1/embeddings", "input"),
          "azure": ("/openai/deployments/d/embeddings?api-version=2024-02-01", "input")}

CASES: list[tuple[str, Any, dict[str, str], int]] = [
    ("invalid json", b'{"input": ', {}, 400),
    ("not an object", b'["a"]', {}, 400),
    ("empty body", b"", {}, 400),
    ("non-utf8", b'{"input": "\xff\xfe"}', {}, 400),
    ("lone surrogate", b'{"input": "\\ud800"}', {}, 400),
    ("input number", {"input": 5}, {}, 400),
    ("input object", {"input": {"a": 1}}, {}, 400),
    ("mixed list", {"input": ["a", 1]}, {}, 400),
    ("null in list", {"input": ["a", None]}, {}, 400),
    ("too many inputs", {"input": ["x"] * 2049}, {}, 400),
    ("model not string", {"input": "a", "model": 3}, {}, 400),
    ("dimensions string", {"input": "a", "dimensions": "64"}, {}, 400),
    ("dimensions bool", {"input": "a", "dimensions": True}, {}, 400),
    ("dimensions too large", {"input": "a", "dimensions": 385}, {}, 422),
    ("xml content type", b"<a/>", {"Content-Type": "application/xml"}, 415),
    ("latin-1 charset", b'{"input": "a"}', {"Content-Type": "application/json; charset=latin-1"}, 415),
]
OLLAMA_ONLY = [
    # Ollama has no token-id input; the OpenAI routes read ids as cl100k_base (tests/unit/test_token_ids.py).
    ("token ids", {"input": [1, 2, 3]}, {}, 422),
    ("truncate not bool", {"input": "a", "truncate": "no"}, {}, 400),
    ("too long, truncate false", {"input": "word " * 600, "truncate": False}, {}, 400),
]
OPENAI_ONLY = [
    # Ollama answers these 200 (its "load the model" ping; 0 = unset): tests/api/test_ollama.py.
    ("input missing", {"model": "m"}, {}, 400),
    ("empty string", {"input": ""}, {}, 400),
    ("empty list", {"input": []}, {}, 400),
    ("empty in list", {"input": ["a", ""]}, {}, 400),
    ("dimensions zero", {"input": "a", "dimensions": 0}, {}, 400),
    ("bad encoding_format", {"input": "a", "encoding_format": "int8"}, {}, 400),
    ("token id out of cl100k_base", {"input": [[9906], [100_300]]}, {}, 422),
    ("special token id", {"input": [100_257]}, {}, 422),
    ("negative token id", {"input": [-1]}, {}, 422),
    ("empty token list", {"input": [[9906], []]}, {}, 400),
]


def _send(url: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    if isinstance(body, bytes):
        h = {"Content-Type": "application/json", **headers}
        return httpx.post(url, content=body, headers=h)
    return httpx.post(url, json=body, headers=headers)


def _check_envelope(proto: str, r: httpx.Response) -> None:
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    if proto == "ollama":
        assert isinstance(body["error"], str) and body["error"]
    else:
        err = body["error"]
        assert err["message"] and err["type"] and "code" in err and "param" in err


def _params() -> Iterator[Any]:
    for proto in ROUTES:
        extra = OLLAMA_ONLY if proto == "ollama" else OPENAI_ONLY
        for name, body, headers, status in CASES + extra:
            yield pytest.param(proto, body, headers, status, id=f"{proto}-{name}")


@pytest.mark.parametrize(("proto", "body", "headers", "status"), list(_params()))
def test_bad_input_matrix(fake_url: str, proto: str, body: Any, headers: dict[str, str], status: int) -> None:
    path, key = ROUTES[proto]
    r = _send(fake_url + path, body, headers)
    assert r.status_code == status, r.text
    _check_envelope(proto, r)
    assert r.headers.get("x-request-id")
    # The server still answers correctly afterwards.
    ok = httpx.post(fake_url + path, json={"model": "all-minilm", key: "still fine"})
    assert ok.status_code == 200


def test_unknown_route_and_method_use_the_envelope(fake_url: str) -> None:
    r = httpx.get(fake_url + "/v1/embeddings")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    _check_envelope("openai", r)
    r = httpx.post(fake_url + "/api/nope", json={})
    assert r.status_code == 404
    _check_envelope("ollama", r)


def test_curl_style_form_content_type_is_accepted(fake_url: str) -> None:
    # `curl -d '{...}'` (as in Ollama's docs) sends application/x-www-form-urlencoded.
    r = httpx.post(fake_url + "/api/embed", content=b'{"model":"all-minilm","input":"hi"}',
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200


def test_body_limit_413(fake_settings: Settings) -> None:
    with running(with_settings(fake_settings, **{"max_body_bytes": 4096}), backend=FakeBackend()) as srv:
        big = {"input": "x" * 5000}
        for path, proto in (("/api/embed", "ollama"), ("/v1/embeddings", "openai")):
            r = httpx.post(srv.url + path, json=big)
            assert r.status_code == 413, r.text
            _check_envelope(proto, r)
            # Chunked upload: no Content-Length, the limit still holds while reading.
            chunks = iter([b'{"input": "', b"x" * 5000, b'"}'])
            r = httpx.post(srv.url + path, content=chunks, headers={"Content-Type": "application/json"})
            assert r.status_code == 413
            assert httpx.post(srv.url + path, json={"input": "small"}).status_code == 200


def test_strict_model_404(fake_settings: Settings) -> None:
    with running(with_settings(fake_settings, **{"strict_model": True}), backend=FakeBackend()) as srv:
        r = httpx.post(srv.url + "/api/embed", json={"model": "nomic-embed-text", "input": "a"})
        assert r.status_code == 404 and "nomic-embed-text" in r.json()["error"]
        r = httpx.post(srv.url + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "a"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        for name in ("all-minilm", "all-minilm:l6-v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
            assert httpx.post(srv.url + "/api/embed", json={"model": name, "input": "a"}).status_code == 200


class _GatedBackend:
    """A backend behind a gate, so the test controls when inference proceeds."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, "gated"
        self.gate, self.entered = threading.Event(), threading.Event()

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(60)
        return self.inner.forward(ids, mask)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.inner.close()


def test_overload_429_with_retry_after_and_nothing_lost(fake_settings: Settings) -> None:
    backend = _GatedBackend(FakeBackend())
    backend.gate.set()  # let warm-up through
    settings = with_settings(fake_settings, **{"max_queue_texts": 3, "max_batch_items": 2, "max_wait_ms": 0})
    srv = ServerThread(settings, backend=backend).start()
    try:
        backend.gate.clear()
        backend.entered.clear()
        results: dict[str, httpx.Response] = {}

        def post(name: str, texts: list[str]) -> None:
            results[name] = httpx.post(srv.url + "/api/embed", json={"model": "m", "input": texts}, timeout=60)

        first = threading.Thread(target=post, args=("first", ["a", "b"]))
        first.start()
        assert backend.entered.wait(10)
        second = threading.Thread(target=post, args=("second", ["c"]))
        second.start()
        import time
        deadline = time.monotonic() + 10
        while "sqlembed_queue_depth 3.0" not in httpx.get(srv.url + "/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for path, proto in (("/api/embed", "ollama"), ("/v1/embeddings", "openai")):
            r = httpx.post(srv.url + path, json={"input": "d"})
            assert r.status_code == 429
            assert int(r.headers["Retry-After"]) >= 1
            _check_envelope(proto, r)
        backend.gate.set()
        first.join(30)
        second.join(30)
        assert results["first"].status_code == 200 and len(results["first"].json()["embeddings"]) == 2
        assert results["second"].status_code == 200
        assert httpx.post(srv.url + "/api/embed", json={"input": "after"}).status_code == 200
        assert 'sqlembed_rejected_total 2.0' in httpx.get(srv.url + "/metrics").text
    finally:
        backend.gate.set()
        srv.stop()
