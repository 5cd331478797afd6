from __future__ import annotations

import threading

import httpx
import pytest

from sqlembed.settings import Settings
from tests.support.server import ServerThread

pytestmark = pytest.mark.slow


def test_healthz_and_readyz(base_url: str) -> None:
    assert httpx.get(base_url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(base_url + "/readyz").json()
    placement, engine = r.pop("placement"), r.pop("engine")
    assert r == {"status": "ready", "model": "all-minilm-l6-v2-fp32", "backend": "onnx-cpu", "dimensions": 384,
                 "prompts": {}, "vector_id": "all-minilm-l6-v2-fp32"}
    # The backend describes itself: runtime, the precision it computes in, and why it was chosen.
    assert engine["backend"] == "onnx-cpu" and engine["precision"] == "fp32" and engine["cpu"]
    assert placement["mode"] == "local" and placement["active"] == "local"
    assert set(placement["batches"]) <= {"local"}


def test_readyz_waits_for_warmup(base_settings: Settings) -> None:
    from sqlembed.engine.registry import create_backend

    release = threading.Event()
    inner = create_backend("onnx-cpu", base_settings.model_dir / "all-minilm-l6-v2-fp32", threads=2)

    class SlowWarmup:
        name = "slow"

        def forward(self, ids, mask):  # type: ignore[no-untyped-def]
            release.wait(30)
            return inner.forward(ids, mask)

        def close(self) -> None:
            inner.close()

    srv = ServerThread(base_settings, backend=SlowWarmup())  # type: ignore[arg-type]
    srv._thread.start()
    srv._started.wait(10)
    try:
        assert httpx.get(srv.url + "/healthz").status_code == 200
        r = httpx.get(srv.url + "/readyz")
        assert r.status_code == 503 and r.headers["Retry-After"]
        e = httpx.post(srv.url + "/api/embed", json={"input": "a"})
        assert e.status_code == 503 and "Retry-After" in e.headers
        release.set()
        for _ in range(200):
            if httpx.get(srv.url + "/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert httpx.post(srv.url + "/api/embed", json={"input": "a"}).status_code == 200
    finally:
        release.set()
        srv.stop()


def test_metrics_count_requests_batches_and_tokens(base_url: str) -> None:
    httpx.post(base_url + "/api/embed", json={"input": ["one two", "three"]})
    httpx.post(base_url + "/api/embed", json={"input": ""})
    text = httpx.get(base_url + "/metrics").text
    assert 'sqlembed_requests_total{method="POST",route="/api/embed",status="200"}' in text
    assert 'sqlembed_requests_total{method="POST",route="/api/embed",status="400"}' in text
    assert "sqlembed_request_duration_seconds_bucket" in text
    assert "sqlembed_batch_size_bucket" in text
    assert "sqlembed_queue_depth" in text
    tokens = [ln for ln in text.splitlines() if ln.startswith("sqlembed_tokens_total")]
    assert tokens and float(tokens[0].split()[-1]) > 0
