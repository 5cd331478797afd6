"""Throughput benchmark: the baseline and sqlembed measured on one corpus, in one run.

Phases (each printed with its ratio to the baseline):
  1. sentence-transformers ``encode`` in-process, fp32 (what a user would otherwise run);
  2. the sqlembed engine in-process, per precision;
  3. the service under N concurrent single-text clients (the AI_GENERATE_EMBEDDINGS pattern),
     twice: a fresh service, then one that has met the corpus's batch shapes;
  4. the service with 64-text requests.
The service runs as a subprocess (``sqlembed serve``); clients run here, on loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sqlembed.benchmark.cluster import free_port
from sqlembed.benchmark.corpus import paragraphs


@dataclass
class Result:
    name: str
    precision: str
    texts: int
    tokens: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.texts / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def pct(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(self.latencies_ms, q))


def bench_baseline(texts: list[str], tokens: int, batch_size: int) -> Result:
    from sentence_transformers import SentenceTransformer

    from sqlembed.engine.build import default_source

    st = SentenceTransformer(str(default_source()), device="cpu")
    st.encode(texts[:64], batch_size=batch_size)
    t0 = time.perf_counter()
    st.encode(texts, batch_size=batch_size)
    return Result("sentence-transformers encode (baseline)", "fp32", len(texts), tokens, time.perf_counter() - t0)


def bench_engine(model_dir: Path, precision: str, texts: list[str], tokens: int) -> Result:
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder

    emb = open_embedder(EngineSettings(model_dir, "all-minilm-l6-v2", precision))  # auto: the precision's runtime
    emb.embed(texts[:64])
    t0 = time.perf_counter()
    emb.embed(texts)
    return Result("sqlembed engine in-process", precision, len(texts), tokens, time.perf_counter() - t0)


class Service:
    def __init__(self, model_dir: Path, precision: str, extra_env: dict[str, str], src: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_PRECISION": precision,
               "SQLEMBED_LOG_LEVEL": "WARNING", "SQLEMBED_API_KEYS": "", **extra_env}
        if src is not None:  # an A/B: the same benchmark against another source tree's service
            env["PYTHONPATH"] = str(src / "python")
        self.proc = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(self.port)], env=env)

    async def wait_ready(self, session: Any) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                async with session.get(self.url + "/readyz") as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError("service did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def _drive(url: str, items: list[list[str]], concurrency: int) -> tuple[float, list[float]]:
    import aiohttp

    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for it in items:
        queue.put_nowait(it)
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker() -> None:
            while not queue.empty():
                batch = queue.get_nowait()
                body = {"model": "all-minilm", "input": batch[0] if len(batch) == 1 else batch}
                t = time.perf_counter()
                async with session.post(url + "/api/embed", json=body) as r:
                    payload = await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"HTTP {r.status}: {payload[:200]!r}")
                latencies.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, latencies


async def bench_service(model_dir: Path, precision: str, texts: list[str], tokens: int, clients: int,
                        env: dict[str, str], src: Path | None = None, label: str = "service") -> list[Result]:
    import aiohttp

    svc = Service(model_dir, precision, env, src)
    try:
        async with aiohttp.ClientSession() as s:
            await svc.wait_ready(s)
        await _drive(svc.url, [[t] for t in texts[:200]], clients)  # warm connections and arenas
        secs, lat = await _drive(svc.url, [[t] for t in texts], clients)
        single = Result(f"{label}, {clients} clients x 1 text", precision, len(texts), tokens, secs, lat)
        # The same texts again: the steady state of a service that has met its batch shapes
        # (OpenVINO compiles kernels per new shape; the first pass pays for them).
        secs, lat = await _drive(svc.url, [[t] for t in texts], clients)
        again = Result(f"{label}, {clients} clients x 1 text, again", precision, len(texts), tokens, secs, lat)
        batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
        secs, lat = await _drive(svc.url, batches, 2)
        multi = Result(f"{label}, 64-text requests (2 clients)", precision, len(texts), tokens, secs, lat)
        return [single, again, multi]
    finally:
        svc.stop()


def _fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:,.1f}{unit}"


def report(results: list[Result]) -> str:
    base = results[0]
    engine = {r.precision: r for r in results if r.name.startswith("sqlembed engine")}
    lines = [f"{'phase':52} {'prec':5} {'sent/s':>9} {'tok/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'x base':>7} {'x engine':>8}"]
    for r in results:
        eng = engine.get(r.precision)
        served = not r.name.startswith(("sqlembed engine", "sentence"))
        vs_engine = f"{r.per_s / eng.per_s:.2f}" if eng is not None and served else "-"
        lines.append(f"{r.name:52} {r.precision:5} {r.per_s:9.1f} {r.tokens_per_s:10,.0f} "
                     f"{_fmt(r.pct(50)):>8} {_fmt(r.pct(99)):>8} {r.per_s / base.per_s:7.2f} {vs_engine:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sqlembed bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=0, help="limit the corpus (default: all ~1,950 paragraphs)")
    p.add_argument("--precision", default="fp32,int8", help="comma-separated: fp32,int8")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--baseline-batch", type=int, default=32)
    p.add_argument("--model-dir", help="model store (default: a temporary one, models built first)")
    p.add_argument("--skip-service", action="store_true")
    p.add_argument("--json", help="also write results to this JSON file")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service (repeatable)")
    p.add_argument("--baseline-src", type=Path,
                   help="also run the service phases from this source tree (an A/B of a change, in one run)")
    p.add_argument("--repeat", type=int, default=1,
                   help="service phases this many times (alternating with the baseline source)")
    p.add_argument("--skip-baseline", action="store_true",
                   help="skip sentence-transformers (the engine is then the first row)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    texts = paragraphs(args.texts or None)
    precisions = [x for x in args.precision.split(",") if x]
    model_dir = Path(args.model_dir or tempfile.mkdtemp(prefix="sqlembed-bench-"))
    from sqlembed.engine.build import build_model
    from sqlembed.engine.config import model_id
    from sqlembed.engine.store import ModelStore
    from sqlembed.engine.tokenizer import Tokenizer

    store = ModelStore(model_dir)
    for prec in precisions:
        build_model(store, precision=prec)
    tok = Tokenizer(store.path(model_id("all-minilm-l6-v2", precisions[0])) / "tokenizer.json", 256)
    lengths = [len(t) for t in tok.encode(texts).ids]
    tokens = sum(lengths)
    print(f"corpus: {len(texts)} paragraphs, mean {statistics.mean(lengths):.1f} tokens, "
          f"p95 {np.percentile(lengths, 95):.0f}, max {max(lengths)} (truncated at 256); cpus={os.cpu_count()}",
          flush=True)
    env = dict(kv.split("=", 1) for kv in args.env)

    results = [] if args.skip_baseline else [bench_baseline(texts, tokens, args.baseline_batch)]
    if results:
        print(report(results), flush=True)
    for prec in precisions:
        results.append(bench_engine(model_dir, prec, texts, tokens))
    for prec in precisions:
        for _ in range(args.repeat if not args.skip_service else 0):
            results += asyncio.run(bench_service(model_dir, prec, texts, tokens, args.clients, env))
            if args.baseline_src:
                results += asyncio.run(bench_service(model_dir, prec, texts, tokens, args.clients, env,
                                                     args.baseline_src, f"baseline ({args.baseline_src.name})"))
            print(report(results), flush=True)
    print()
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{**asdict(r), "per_s": r.per_s, "p50_ms": r.pct(50), "p99_ms": r.pct(99), "latencies_ms": None}
             for r in results], indent=2))
    return 0
