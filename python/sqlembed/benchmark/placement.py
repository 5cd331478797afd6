"""Placement benchmark: placement=local against placement=spark on a standalone cluster, in one run.

Phases:
  1. dispatch overhead on a warm session: the same one-text batch sent to a long-running executor
     task (spark/dispatch.py) and run as a Spark job of its own (the design we did not take);
     overhead = round trip minus the executor's compute time;
  2. the service (``sqlembed serve`` subprocess) with placement=local, then placement=spark against
     the same cluster: N single-text clients, then 64-text requests; sentences/s, p50/p99, and the
     driver's CPU milliseconds per text (what bounds a driver feeding many GPU workers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sqlembed.benchmark.cluster import Cluster
from sqlembed.benchmark.corpus import paragraphs
from sqlembed.benchmark.throughput import Service, _drive


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _job_per_batch(es: Any, batch: list[list[int]]) -> Any:
    def run(rows: Any) -> Any:
        from sqlembed.spark.engines import cached_embedder

        for _ in rows:  # drained, or Spark does not reuse the Python worker (SPARK-26549)
            pass
        emb = cached_embedder(es)
        t0 = time.perf_counter()
        emb.embed_tokens([np.asarray(b, dtype=np.int64) for b in batch])
        return iter([time.perf_counter() - t0])

    return run


def dispatch_overhead(cluster_url: str, model_dir: Path, model_id: str, rounds: int) -> dict[str, Any]:
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder
    from sqlembed.spark.online.placement import SparkPlacement
    from sqlembed.spark.session import SessionHolder, spark_conf

    name, _, precision = model_id.rpartition("-")
    es = EngineSettings(model_dir, name, precision)
    local = open_embedder(es.with_threads(1))
    holder = SessionHolder(spark_conf(cluster_url, gpu=False))
    overheads: list[float] = []
    placement = SparkPlacement(mode="spark", local=local, session=holder, engine=es, on_overhead=overheads.append)
    placement.start()
    try:
        deadline = time.monotonic() + 180
        while placement.worker_count() == 0:
            if time.monotonic() > deadline:
                raise TimeoutError("no executor task connected")
            time.sleep(0.2)
        batch = local.tokenize(["SQL Server 2025 calls this service for one text at a time."])
        for _ in range(20):  # warm the executor's engine and the socket
            lease = placement.acquire(10)
            assert lease is not None
            lease.run(batch)
            lease.release()
        overheads.clear()
        rtts = []
        for _ in range(rounds):
            lease = placement.acquire(10)
            assert lease is not None
            t0 = time.perf_counter()
            _, label = lease.run(batch)
            rtts.append(time.perf_counter() - t0)
            lease.release()
            assert label == "spark"
        sc = holder.get().sparkContext
        job = _job_per_batch(es, [b.tolist() for b in batch])
        for _ in range(3):
            sc.parallelize([0], 1).mapPartitions(job).collect()
        job_overheads = []
        for _ in range(max(10, rounds // 10)):
            t0 = time.perf_counter()
            (compute,) = sc.parallelize([0], 1).mapPartitions(job).collect()
            job_overheads.append(time.perf_counter() - t0 - compute)
    finally:
        placement.close()
        holder.close()
        local.close()
    def ms(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) * 1000.0

    return {"socket_p50_ms": ms(overheads, 50), "socket_p99_ms": ms(overheads, 99), "socket_rtt_p50_ms": ms(rtts, 50),
            "job_p50_ms": ms(job_overheads, 50), "job_p99_ms": ms(job_overheads, 99)}


async def storm(model_dir: Path, env: dict[str, str], texts: list[str], clients: int,
                label: str) -> list[dict[str, Any]]:
    import aiohttp

    svc = Service(model_dir, "fp32", {"SQLEMBED_LOG_LEVEL": "WARNING", **env})
    try:
        async with aiohttp.ClientSession() as s:
            await svc.wait_ready(s)
        await _drive(svc.url, [[t] for t in texts[:200]], clients)
        rows = []
        for name, items, conc in (
            (f"{clients} clients x 1 text", [[t] for t in texts], clients),
            ("64-text requests, 2 clients", [texts[i : i + 64] for i in range(0, len(texts), 64)], 2),
        ):
            cpu0 = _cpu_seconds(svc.proc.pid)
            secs, lat = await _drive(svc.url, items, conc)
            cpu = _cpu_seconds(svc.proc.pid) - cpu0
            rows.append({"placement": label, "workload": name, "per_s": len(texts) / secs,
                         "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                         "driver_cpu_ms_per_text": cpu * 1000 / len(texts)})
        return rows
    finally:
        svc.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=os.environ.get("SQLEMBED_MODEL_DIR", os.path.expanduser(
        "~/.cache/sqlembed/models")))
    ap.add_argument("--texts", type=int, default=1500)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=300, help="batches for the dispatch-overhead phase")
    ap.add_argument("--worker-cores", type=int, default=2)
    args = ap.parse_args(argv)
    model_dir = Path(args.model_dir)
    model_id = "all-minilm-l6-v2-fp32"
    texts = [p[:400] for p in paragraphs()][: args.texts]
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), worker_cores=args.worker_cores).start()
        try:
            print(f"cluster {cluster.url}: 1 worker, {args.worker_cores} cores; {len(texts)} texts", flush=True)
            o = dispatch_overhead(cluster.url, model_dir, model_id, args.rounds)
            print("\nper-batch dispatch overhead (one text, warm session; round trip minus executor compute)")
            print(f"  long-running task + socket: p50 {o['socket_p50_ms']:.2f} ms, p99 {o['socket_p99_ms']:.2f} ms "
                  f"(round trip p50 {o['socket_rtt_p50_ms']:.2f} ms)")
            print(f"  a Spark job per batch:      p50 {o['job_p50_ms']:.1f} ms, p99 {o['job_p99_ms']:.1f} ms")
            print(f"  ratio job/socket at p50:    {o['job_p50_ms'] / o['socket_p50_ms']:.0f}x "
                  f"(target: socket p50 <= 30 ms)", flush=True)
            rows: list[dict[str, Any]] = []
            rows += asyncio.run(storm(model_dir, {"SQLEMBED_PLACEMENT": "local"}, texts, args.clients, "local"))
            rows += asyncio.run(storm(model_dir, {"SQLEMBED_PLACEMENT": "spark", "SQLEMBED_SPARK_MASTER": cluster.url,
                                                  "SQLEMBED_STATE_DIR": str(Path(tmp) / "state")},
                                      texts, args.clients, "spark"))
        finally:
            cluster.stop()
    print(f"\n{'placement':<10} {'workload':<30} {'texts/s':>9} {'vs local':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'driver CPU ms/text':>19}")
    local_rate = {r["workload"]: r["per_s"] for r in rows if r["placement"] == "local"}
    for r in rows:
        ratio = r["per_s"] / local_rate[r["workload"]]
        print(f"{r['placement']:<10} {r['workload']:<30} {r['per_s']:>9.1f} {ratio:>8.2f}x {r['p50_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['driver_cpu_ms_per_text']:>19.2f}")
    return 0
