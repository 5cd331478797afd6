"""Where a lone single-text request's time goes: a timeline of its hand-offs (issue 24).

The service runs in this process (``run/service.service_app`` on a loopback port, its own event
loop thread); a raw HTTP client in the main thread sends SQL Server's Ollama body, one call after
another. Wrappers stamp ``time.perf_counter`` at each hand-off, and the report gives the median
of each segment:

  client send -> middleware in            loop wake-up, HTTP parsing, routing
  middleware in -> embed_texts in         body read, request model, model-name resolution
  embed_texts in -> batcher in            tokenization (inline for small requests)
  batcher in -> engine in                 enqueue, worker wake-up, slot lease, batch formation
  engine in -> engine out                 the forward pass and pooling (``Embedder.embed_tokens``)
  engine out -> future resolved           bookkeeping, ``call_soon_threadsafe`` wake-up of the loop
  future resolved -> embed_texts out      the handler's coroutine resumes
  embed_texts out -> middleware out       response body (orjson) and headers
  middleware out -> client done           metrics, access log, write, client read

A diagnostic, run on demand: the wrappers add a few microseconds per stamp.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from sqlembed.benchmark.corpus import paragraphs
from sqlembed.benchmark.machine import describe

ORDER = ("send", "mw_in", "et_in", "b_in", "eng_in", "eng_out", "resolve", "et_out", "mw_out", "done")
LABELS = {
    "send": "client send -> middleware in", "mw_in": "middleware in -> embed_texts in",
    "et_in": "embed_texts in -> batcher in (tokenize)", "b_in": "batcher in -> engine in (hand-off)",
    "eng_in": "engine in -> engine out (forward)", "eng_out": "engine out -> future resolved",
    "resolve": "future resolved -> embed_texts out", "et_out": "embed_texts out -> middleware out (JSON)",
    "mw_out": "middleware out -> client done",
}


def _instrument(stamps: dict[str, float]) -> None:
    from aiohttp import web

    import sqlembed.api.app as appmod
    import sqlembed.api.ollama as ollama
    import sqlembed.engine.batcher as batcher
    from sqlembed.engine.embedder import Embedder

    def mark(key: str) -> None:
        stamps[key] = time.perf_counter()

    inner_mw = appmod.metrics_middleware

    @web.middleware
    async def outer(request: web.Request, handler: Any) -> web.StreamResponse:
        mark("mw_in")
        resp = await inner_mw(request, handler)
        mark("mw_out")
        return resp

    appmod.metrics_middleware = outer  # read by create_app at call time
    inner_et = ollama.embed_texts  # type: ignore[attr-defined]  # the name the route calls

    async def embed_texts(*a: Any, **k: Any) -> Any:
        mark("et_in")
        out = await inner_et(*a, **k)
        mark("et_out")
        return out

    ollama.embed_texts = embed_texts  # type: ignore[attr-defined]
    inner_be = batcher.Batcher.embed

    async def batcher_embed(self: Any, encoded: Any) -> Any:
        mark("b_in")
        return await inner_be(self, encoded)

    batcher.Batcher.embed = batcher_embed  # type: ignore[method-assign]
    inner_tok = Embedder.embed_tokens

    def embed_tokens(self: Any, batch: Any) -> Any:
        mark("eng_in")
        out = inner_tok(self, batch)
        mark("eng_out")
        return out

    Embedder.embed_tokens = embed_tokens  # type: ignore[method-assign]
    inner_resolve = batcher._resolve

    def resolve(req: Any) -> None:
        mark("resolve")
        inner_resolve(req)

    batcher._resolve = resolve


def _serve(settings: Any, port: int) -> None:
    from aiohttp import web

    from sqlembed.run.loop import new_event_loop
    from sqlembed.run.service import service_app

    loop = new_event_loop(settings)
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(service_app(settings))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    loop.run_forever()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/lone_request.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--model-dir", type=Path, help="model store holding the built model (default: the service's)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a service setting, e.g. max_wait_ms=1 (repeatable)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sqlembed.benchmark.cluster import free_port
    from sqlembed.benchmark.rowbyrow import RawClient, get_status
    from sqlembed.settings import Settings

    stamps: dict[str, float] = {}
    _instrument(stamps)
    fields: dict[str, Any] = {"log_level": "WARNING", "api_keys": "", **dict(kv.split("=", 1) for kv in args.set)}
    if args.model_dir:
        fields["model_dir"] = args.model_dir
    settings = Settings(**fields)
    port = free_port()
    threading.Thread(target=_serve, args=(settings, port), daemon=True).start()
    deadline = time.monotonic() + 240
    while True:
        try:
            if get_status(port, "/readyz") == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the service did not become ready")
        time.sleep(0.1)
    client = RawClient(port, "/api/embed")
    texts = paragraphs(args.texts + args.warmup)
    requests = [client.request(json.dumps({"model": "all-minilm", "input": [t]}).encode()) for t in texts]
    segments: dict[str, list[float]] = defaultdict(list)
    for i, req in enumerate(requests):
        stamps.clear()
        stamps["send"] = time.perf_counter()
        client.post(req)
        stamps["done"] = time.perf_counter()
        if i < args.warmup:
            continue
        for a, b in itertools.pairwise(ORDER):
            segments[a].append((stamps[b] - stamps[a]) * 1000)
        segments["total"].append((stamps["done"] - stamps["send"]) * 1000)
    print(f"machine: {describe()}; settings: {', '.join(args.set) or 'defaults'}; {args.texts} calls")
    for key, values in segments.items():
        label = LABELS.get(key, "total")
        print(f"{label:48} p50 {np.median(values):7.3f} ms   mean {np.mean(values):7.3f} ms")
    beyond = np.median(segments["total"]) - np.median(segments["eng_in"])
    print(f"{'beyond the forward pass (p50 total - p50 forward)':48}     {beyond:7.3f} ms")
    return 0
