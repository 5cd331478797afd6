from __future__ import annotations

import threading

import httpx

from sqlembed.settings import Settings
from tests.support.fake import FakeBackend
from tests.support.server import ServerThread, running


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


def test_readyz_waits_for_warmup(fake_settings: Settings) -> None:
    release = threading.Event()
    inner = FakeBackend()

    class SlowWarmup:
        name = "slow"

        def forward(self, ids, mask):  # type: ignore[no-untyped-def]
            release.wait(30)
            return inner.forward(ids, mask)

        def close(self) -> None:
            inner.close()

    srv = ServerThread(fake_settings, backend=SlowWarmup())  # type: ignore[arg-type]
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


def _metrics(url: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_count_requests_batches_and_tokens(fake_settings: Settings) -> None:
    """Counts, not names: one server of its own, so nothing else moves its counters."""
    ok = 'sqlembed_requests_total{method="POST",route="/api/embed",status="200"}'
    bad = 'sqlembed_requests_total{method="POST",route="/api/embed",status="400"}'
    latency = 'sqlembed_request_duration_seconds_count{route="/api/embed"}'
    with running(fake_settings, backend=FakeBackend()) as srv:
        before = _metrics(srv.url)
        r = httpx.post(srv.url + "/api/embed", json={"input": ["one two", "three"]})
        assert r.status_code == 200
        assert httpx.post(srv.url + "/api/embed", json={"input": 5}).status_code == 400
        after = _metrics(srv.url)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    assert delta[ok] == 1 and delta[bad] == 1 and delta[latency] == 2
    assert delta["sqlembed_texts_total"] == 2 and delta["sqlembed_batch_size_sum"] == 2
    assert delta["sqlembed_batch_size_count"] >= 1
    assert delta["sqlembed_tokens_total"] == r.json()["prompt_eval_count"]  # the tokens the caller was told
    assert delta["sqlembed_padded_tokens_total"] >= delta["sqlembed_tokens_total"]
    assert after["sqlembed_queue_depth"] == 0


def test_readyz_and_status_report_one_state_while_waiting_for_executors(fake_settings: Settings) -> None:
    """placement=spark with no executor: /readyz sends traffic elsewhere (503) and /v1/status says why."""
    from sqlembed.api.state import SERVICE
    from sqlembed.engine.placement import WAITING

    class NoExecutor:
        def describe(self) -> dict[str, object]:
            return {"mode": "spark", "active": WAITING, "workers": []}

    with running(fake_settings, backend=FakeBackend()) as srv:
        svc = srv.app[SERVICE]
        assert httpx.get(srv.url + "/readyz").status_code == 200
        local, svc.placement = svc.placement, NoExecutor()  # type: ignore[assignment]
        try:
            r = httpx.get(srv.url + "/readyz")
            assert r.status_code == 503 and r.headers["Retry-After"] == "5"
            assert r.json()["status"] == WAITING and r.json()["placement"]["active"] == WAITING
            assert httpx.get(srv.url + "/v1/status").json()["status"] == WAITING
        finally:
            svc.placement = local
        assert httpx.get(srv.url + "/readyz").json()["status"] == "ready"
