"""``sqlembed serve --workers 2``: two front processes on one port (SO_REUSEPORT) and one engine
host. Vectors are the single-process service's, both fronts take connections, /metrics counts
each request once across the processes, admission (429) is the host's one queue, jobs and the
status page's figures are answered by the host, and a front that dies is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from sqlembed.benchmark.corpus import paragraphs
from tests.support.engines import open_engine

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc, self.url = proc, url

    def fronts(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "sqlembed.run.front"], capture_output=True,
                             text=True).stdout
        return sorted(int(p) for p in out.split())


def _serve(model_dir: Path, tmp: Path, **env: str) -> Iterator[Served]:
    port = _free_port()
    full = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_API_KEYS": "", "HF_HUB_OFFLINE": "1",
            "SQLEMBED_STATE_DIR": str(tmp), "SQLEMBED_LOG_LEVEL": "WARNING", **env}
    full.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--workers", "2", "--port", str(port)],
                            env=full)
    served = Served(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 90
        answered: set[str] = set()  # fronts seen answering: a started process may not listen yet
        while time.monotonic() < deadline:
            try:
                r = httpx.get(served.url + "/readyz", timeout=2)  # a new connection each time
                if r.status_code == 200:
                    answered.add(r.headers["x-request-id"][:16])  # the front's per-process id prefix
                if len(answered) == 2 and len(served.fronts()) == 2:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "serve --workers 2 exited"
            time.sleep(0.1 if answered else 0.3)
        else:
            raise AssertionError("serve --workers 2 did not become ready")
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def served(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(model_dir, tmp_path_factory.mktemp("workers"))


def test_vectors_are_the_engines_and_both_fronts_answer(served: Served, model_dir: Path) -> None:
    texts = paragraphs()[:40]
    ref = open_engine(model_dir).embed(texts)
    prefixes = set()
    for i in range(0, 40, 4):
        # A new connection each time: SO_REUSEPORT spreads connections, not requests.
        with httpx.Client() as c:
            r = c.post(served.url + "/api/embed", json={"input": texts[i: i + 4]})
        assert r.status_code == 200, r.text
        got = np.asarray(r.json()["embeddings"], dtype=np.float32)
        np.testing.assert_allclose(got, ref[i: i + 4], atol=1e-6)
        prefixes.add(r.headers["x-request-id"][:16])  # each process has its own id prefix
    assert len(prefixes) == 2, "both front processes took connections"
    r = httpx.post(served.url + "/v1/embeddings", json={"input": texts[0], "dimensions": 128})
    cut = ref[0, :128] / np.linalg.norm(ref[0, :128])
    assert float(np.asarray(r.json()["data"][0]["embedding"]) @ cut) >= 0.99999


def test_ollama_discovery_and_token_ids_on_every_front(served: Served) -> None:
    """/api/show and /api/ps are answered by each front from its own manifest; token ids are
    decoded in the front that parsed the request."""
    prefixes = set()
    for _ in range(8):
        with httpx.Client() as c:  # a new connection each time: both fronts take some
            show = c.post(served.url + "/api/show", json={"model": "all-minilm:latest"})
            ps = c.get(served.url + "/api/ps")
            ids = c.post(served.url + "/v1/embeddings", json={"input": [[9906, 1917]]})  # cl100k_base "Hello world"
            text = c.post(served.url + "/v1/embeddings", json={"input": "Hello world"})
        assert show.status_code == ps.status_code == ids.status_code == 200, (show.text, ps.text, ids.text)
        assert show.json()["model_info"]["bert.context_length"] == 256
        assert ps.json()["models"][0]["context_length"] == 256
        np.testing.assert_allclose(ids.json()["data"][0]["embedding"], text.json()["data"][0]["embedding"], atol=1e-6)
        prefixes.add(show.headers["x-request-id"][:16])
    assert len(prefixes) == 2, "both front processes answered"


def test_metrics_count_each_request_once_across_processes(served: Served) -> None:
    def count() -> float:
        text = httpx.get(served.url + "/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith('sqlembed_requests_total{method="POST",route="/api/embed",status="200"}'))

    before = count()
    for _ in range(12):
        with httpx.Client() as c:
            assert c.post(served.url + "/api/embed", json={"input": "count me"}).status_code == 200
    assert count() - before == 12
    assert 'sqlembed_texts_total' in httpx.get(served.url + "/metrics").text


def test_status_page_figures_come_from_the_host(served: Served) -> None:
    """/v1/status (the /ui page's figures) is answered by the host: its backend (a front has only
    the link to it), its queue, and every front's requests added up."""
    before = httpx.get(served.url + "/v1/status").json()
    for _ in range(8):
        with httpx.Client() as c:  # new connections: both fronts take some
            assert c.post(served.url + "/api/embed", json={"input": ["one", "two", "three"]}).status_code == 200
    r = httpx.get(served.url + "/v1/status")
    assert r.headers["Cache-Control"] == "no-store"
    status = r.json()
    assert (status["status"], status["front_processes"]) == ("ready", 2)
    assert status["backend"] == httpx.get(served.url + "/readyz").json()["backend"] != "engine host"
    assert status["totals"]["requests"] - before["totals"]["requests"] == 8
    assert status["totals"]["texts"] - before["totals"]["texts"] == 24
    assert status["recent"]["latency_p50_ms"] is not None


def test_jobs_and_readiness_come_from_the_host(served: Served) -> None:
    ready = httpx.get(served.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["placement"]["mode"] == "local"
    assert httpx.get(served.url + "/v1/jobs").json() == {"jobs": []}
    missing = httpx.get(served.url + "/v1/jobs/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404 and "error" in missing.json()


def test_a_killed_front_is_replaced(served: Served) -> None:
    first = served.fronts()
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = served.fronts()
        if len(now) == 2 and first[0] not in now:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no replacement front: {served.fronts()}")
    for _ in range(6):
        with httpx.Client() as c:
            assert c.post(served.url + "/api/embed", json={"input": "still here"}).status_code == 200


def test_admission_is_one_queue_for_all_fronts(model_dir: Path, tmp_path: Path) -> None:
    """Limit 100 texts: with one queue, only one 64-text request fits at a time whichever front
    took it; per-front queues would let each front hold one."""
    for served in _serve(model_dir, tmp_path, SQLEMBED_MAX_QUEUE_TEXTS="100"):
        texts = paragraphs()[:64]

        async def burst(url: str, texts: list[str]) -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as c:
                return await asyncio.gather(*(c.post(url + "/api/embed", json={"input": texts}) for _ in range(16)))

        answers = asyncio.run(burst(served.url, texts))
        codes = sorted(r.status_code for r in answers)
        assert len({r.headers["x-request-id"][:16] for r in answers}) == 2, "the burst reached both fronts"
        # 16 requests arrive within milliseconds; embedding 64 paragraphs takes far longer.
        assert codes.count(200) == 1 and codes.count(429) == 15, codes
        refused = next(r for r in answers if r.status_code == 429)
        assert "error" in refused.json() and refused.headers["Retry-After"]
