"""GPU benchmark (one GPU, one run): sentence-transformers fp16 (baseline), the torch CUDA backend,
TensorRT where installed, and the service end to end with 64-text requests; sentences/s, tokens/s,
GPU utilization, ratios to the baseline."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from sqlembed.benchmark.corpus import paragraphs


class GpuSampler:
    """Mean GPU utilization from nvidia-smi while a phase runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",  # nosec B607
                                      "-i", "0"], capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                pass

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/gpu.py", description=__doc__)
    p.add_argument("--texts", type=int, default=20_000, help="corpus size (paragraphs cycled)")
    p.add_argument("--model-dir")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    from sqlembed.benchmark.throughput import Service, _drive
    from sqlembed.engine.build import build_model, default_source
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder
    from sqlembed.engine.store import ModelStore
    from sqlembed.engine.tokenizer import Tokenizer

    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure")
        return 2
    base = paragraphs()
    texts = [base[i % len(base)] for i in range(args.texts)]
    model_dir = Path(args.model_dir or tempfile.mkdtemp(prefix="sqlembed-gpu-"))
    store = ModelStore(model_dir)
    m = build_model(store, precision="fp32")
    tokens = sum(len(t) for t in Tokenizer(store.path(m.id) / "tokenizer.json", 256).encode(texts).ids)
    print(f"GPU: {torch.cuda.get_device_name(0)}; {len(texts)} texts, {tokens} tokens", flush=True)
    rows: list[tuple[str, float, float]] = []

    st = SentenceTransformer(str(default_source()), device="cuda", model_kwargs={"torch_dtype": torch.float16})
    st.encode(texts[:512], batch_size=256)
    with GpuSampler() as g:
        t0 = time.perf_counter()
        st.encode(texts, batch_size=256)
        rows.append(("sentence-transformers fp16 (baseline)", time.perf_counter() - t0, g.mean))
    del st
    backends = ["torch"] + (["tensorrt"] if importlib.util.find_spec("tensorrt") else [])
    for name in backends:
        emb = open_embedder(EngineSettings(model_dir, m.name, m.precision, backend=name, threads=2, device="0",
                                           build_on_start=True, max_batch_items=256, max_batch_tokens=65536))
        emb.embed(texts[:512])
        with GpuSampler() as g:
            t0 = time.perf_counter()
            emb.embed(texts)
            rows.append((f"sqlembed {name} backend", time.perf_counter() - t0, g.mean))
        emb.close()
    svc = Service(model_dir, "fp32", {"SQLEMBED_BACKEND": backends[-1], "SQLEMBED_MAX_BATCH_ITEMS": "256",
                                      "SQLEMBED_MAX_BATCH_TOKENS": "65536", "SQLEMBED_BUILD_ON_START": "true"})
    try:
        import aiohttp

        async def run() -> float:
            async with aiohttp.ClientSession() as s:
                await svc.wait_ready(s)
            batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
            await _drive(svc.url, batches[:20], 16)
            with GpuSampler() as g:
                secs, _ = await _drive(svc.url, batches, 16)
                rows.append(("service, 64-text requests (16 clients)", secs, g.mean))
            return secs

        asyncio.run(run())
    finally:
        svc.stop()
    base_rate = len(texts) / rows[0][1]
    print(f"{'phase':42} {'sent/s':>10} {'tok/s':>12} {'GPU %':>6} {'x base':>7}")
    for name, secs, util in rows:
        rate = len(texts) / secs
        print(f"{name:42} {rate:10,.0f} {tokens / secs:12,.0f} {util:6.0f} {rate / base_rate:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
