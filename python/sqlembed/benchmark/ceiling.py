"""The ceiling around the engine (bench/ceiling.py; run on demand, never in CI).

With the engine taken out (benchmark/instant.py: instant vectors, or a set cost per padded token)
one run measures:

1. the Python front floor: a minimal aiohttp handler that parses the same Ollama body, tokenizes
   with the model's fast tokenizer and returns constant vectors with ``json_response``;
2. the service with the benchmark backend: single-text requests (32 connections) and 64-text
   requests; requests/s, texts/s, p50/p99 and the service's CPU per text; with ``--workers``,
   the same with N front processes;
3. the bulk pipeline of one executor task on SQLite: rows/s, rows read and text bytes moved,
   then a re-run over the unchanged table;
4. the SQL Server write path where ``SQLEMBED_TEST_MSSQL_DSN`` names a server.

Load comes from ``wrk`` (Debian package) with a Lua script, pinned with ``taskset`` to cores the
service does not use; the split is printed. Without ``wrk`` it says so and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlembed.benchmark.bulk import texts_for
from sqlembed.benchmark.cluster import free_port
from sqlembed.benchmark.corpus import paragraphs
from sqlembed.benchmark.instant import A100_NS_PER_TOKEN
from sqlembed.benchmark.machine import describe

MODEL = "all-minilm"


# --- the servers (each runs as its own process: ``python -m sqlembed.benchmark.ceiling serve-...``)

def serve_floor(port: int, model_dir: Path) -> None:
    """The floor: what any Python aiohttp front must spend per request, and nothing else."""
    from aiohttp import web
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "all-minilm-l6-v2-fp32" / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    vector = [0.05103] * 384

    async def embed(request: web.Request) -> web.Response:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        encodings = [tok.encode(texts[0])] if len(texts) == 1 else tok.encode_batch(texts)
        return web.json_response({"model": body.get("model"), "embeddings": [vector] * len(texts),
                                  "total_duration": 0, "load_duration": 0,
                                  "prompt_eval_count": sum(len(e.ids) for e in encodings)})

    app = web.Application()
    app.router.add_post("/api/embed", embed)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def instant_embedder(model_dir: Path, ns_per_token: float) -> Any:
    from sqlembed.benchmark.instant import InstantBackend
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder

    es = EngineSettings(model_dir, "all-minilm-l6-v2", "fp32")
    return open_embedder(es, backend=InstantBackend(384, ns_per_token))


def serve_service(port: int, model_dir: Path, ns_per_token: float, workers: int) -> None:
    """The service as ``sqlembed serve`` builds it, with the benchmark backend in its engine."""
    from sqlembed.settings import Settings

    fields: dict[str, Any] = {"model_dir": model_dir, "host": "127.0.0.1", "port": port, "api_keys": "",
                              "workers": workers, "max_queue_texts": 100_000, "log_level": "WARNING"}
    settings = Settings(**fields)
    if workers > 1:
        from sqlembed.run.host import serve_with_fronts

        serve_with_fronts(settings, instant_embedder(model_dir, ns_per_token))
        return
    from aiohttp import web

    from sqlembed.run.service import service_app

    app = service_app(settings, instant_embedder(model_dir, ns_per_token))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the load generator ----------------------------------------------------------------------

@dataclass
class Load:
    name: str
    requests_per_s: float
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_text: float
    errors: int


def _lua(bodies: list[str], path: Path) -> Path:
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{quoted}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n")
    return path


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if m is None:
        return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes and their threads (their children's too, through /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for child in Path(f"/proc/{p}/task/{p}/children").read_text().split():
                todo.append(int(child))
        except OSError:
            pass
    return out


def run_wrk(name: str, url: str, bodies: list[str], texts_per_request: int, connections: int, seconds: int,
            cores: str, server_pid: int, workdir: Path) -> Load:
    script = _lua(bodies, workdir / f"{abs(hash(name))}.lua")
    pids = _tree(server_pid)
    cpu0 = _cpu_seconds(pids)
    # taskset and wrk from PATH: a benchmark run by hand, on loopback.
    cmd = ["taskset", "-c", cores, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
           url + "/api/embed"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout  # nosec B607
    cpu = _cpu_seconds(pids) - cpu0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return Load(name, rps, rps * texts_per_request, _ms(lat.get("50", "nan")), _ms(lat.get("99", "nan")),
                cpu / max(1, total * texts_per_request) * 1e6, errors)


class Server:
    def __init__(self, args: list[str], cores: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "SQLEMBED_LOG_LEVEL": "WARNING"}
        cmd = ["taskset", "-c", cores, sys.executable, "-m", "sqlembed.benchmark.ceiling", *args, "--port", str(port)]
        self.proc = subprocess.Popen(cmd, env=env)  # nosec B607 - taskset from PATH
        deadline = time.monotonic() + 120
        import urllib.request

        body = json.dumps({"model": MODEL, "input": "warm up"}).encode()
        while time.monotonic() < deadline:
            try:
                req = urllib.request.Request(self.url + "/api/embed", data=body,  # noqa: S310 - loopback
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=2) as r:  # noqa: S310  # nosec B310 - http://127.0.0.1 only
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"{args[0]} did not answer")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _print(load: Load, floor: Load | None = None) -> None:
    ratio = f"{load.requests_per_s / floor.requests_per_s:5.2f}x floor" if floor else " " * 13
    print(f"{load.name:46s} {load.requests_per_s:9,.0f} req/s {load.texts_per_s:9,.0f} texts/s "
          f"p50 {load.p50_ms:6.2f} ms p99 {load.p99_ms:6.2f} ms  CPU {load.cpu_us_per_text:6.1f} us/text  "
          f"{ratio}" + (f"  ({load.errors} errors)" if load.errors else ""), flush=True)


def bench_fronts(args: argparse.Namespace, model_dir: Path) -> None:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): the front measurements need a load generator "
              "that does not run in the service's process")
        return
    cpus = os.cpu_count() or 1
    server_cores, client_cores = args.server_cores, args.client_cores
    print(f"# fronts: server on cores {server_cores}, wrk (1 thread) on cores {client_cores}; {cpus} CPUs; "
          f"{describe()}")
    sentences = [s for p in paragraphs(min_chars=20) for s in re.split(r"(?<=\.)\s+", p) if len(s) > 20][:2000]
    single = [json.dumps({"model": MODEL, "input": s}) for s in sentences[:500]]
    multi = [json.dumps({"model": MODEL, "input": sentences[i: i + 64]}) for i in range(0, 64 * 20, 64)]
    work = Path(tempfile.mkdtemp(prefix="sqlembed-ceiling-"))
    d = args.seconds
    port = free_port()
    floor = Server(["serve-floor", "--model-dir", str(model_dir)], server_cores, port)
    try:
        f1 = run_wrk("floor, single-text (32 conn)", floor.url, single, 1, 32, d, client_cores, floor.proc.pid, work)
        f64 = run_wrk("floor, 64-text (4 conn)", floor.url, multi, 64, 4, d, client_cores, floor.proc.pid, work)
    finally:
        floor.stop()
    _print(f1)
    _print(f64)
    for ns in args.ns_per_token:
        for workers in args.workers:
            port = free_port()
            svc = Server(["serve-service", "--model-dir", str(model_dir), "--ns-per-token", str(ns),
                          "--workers", str(workers)], server_cores, port)
            label = f"service x{workers}, {'instant' if not ns else f'{ns:g} ns/token'}"
            try:
                s1 = run_wrk(f"{label}, single-text", svc.url, single, 1, 32, d, client_cores, svc.proc.pid, work)
                s64 = run_wrk(f"{label}, 64-text", svc.url, multi, 64, 4, d, client_cores, svc.proc.pid, work)
            finally:
                svc.stop()
            _print(s1, f1)
            print(f"{'':46s} texts/s vs floor: {s64.texts_per_s / f64.texts_per_s:4.2f}x")
            _print(s64, f64)


def bench_bulk(args: argparse.Namespace, model_dir: Path) -> None:
    from sqlembed.benchmark.pipeline import docs_table, run_in_process
    from sqlembed.db.targets import TableSpec
    from sqlembed.spark.job import BulkJob

    emb = instant_embedder(model_dir, 0.0)
    work = Path(tempfile.mkdtemp(prefix="sqlembed-ceiling-bulk-"))
    db = work / "bulk.db"
    texts = texts_for(args.rows)
    docs_table(db, texts)
    print(f"# bulk: one executor task's pipeline (read, embed, write overlapped), instant backend, SQLite, "
          f"{args.rows:,} rows; {describe()}")
    job = BulkJob(TableSpec(f"sqlite:///{db}", "docs", "id", "body", "embedding"), emb_settings(model_dir),
                  batch_rows=512)
    for run in ("first run", "re-run, unchanged"):
        _, seen, seconds = run_in_process(job, emb, slices=1)
        print(f"{run:18s}: {seen.rows:>7,} rows read, {seen.text_bytes / 1e6:7.2f} MB of text, {seconds:6.2f}s"
              + (f" = {seen.rows / seconds:8,.0f} rows/s per task" if seen.rows else ""), flush=True)
    dsn = os.environ.get("SQLEMBED_TEST_MSSQL_DSN")
    if not dsn:
        print("SQL Server write path: skipped (no SQLEMBED_TEST_MSSQL_DSN: no server on this machine)")


def emb_settings(model_dir: Path) -> Any:
    from sqlembed.engine.config import EngineSettings

    return EngineSettings(model_dir, "all-minilm-l6-v2", "fp32", threads=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/ceiling.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    for name in ("serve-floor", "serve-service"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--model-dir", required=True)
        s.add_argument("--ns-per-token", type=float, default=0.0)
        s.add_argument("--workers", type=int, default=1)
    p.add_argument("--model-dir", help="model store (default: a temporary one, the bundled model built first)")
    p.add_argument("--part", choices=["fronts", "bulk", "all"], default="all")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--server-cores", default="0")
    p.add_argument("--client-cores", default="1")
    p.add_argument("--workers", type=lambda v: [int(x) for x in v.split(",")], default=[1])
    p.add_argument("--ns-per-token", type=lambda v: [float(x) for x in v.split(",")], default=[0.0, A100_NS_PER_TOKEN])
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cmd == "serve-floor":
        serve_floor(args.port, Path(args.model_dir))
        return 0
    if args.cmd == "serve-service":
        serve_service(args.port, Path(args.model_dir), args.ns_per_token, args.workers)
        return 0
    if args.model_dir:
        model_dir = Path(args.model_dir)
    else:
        from sqlembed.engine.build import build_model
        from sqlembed.engine.store import ModelStore

        model_dir = Path(tempfile.mkdtemp(prefix="sqlembed-ceiling-models-"))
        build_model(ModelStore(model_dir), precision="fp32")
    if args.part in ("fronts", "all"):
        bench_fronts(args, model_dir)
    if args.part in ("bulk", "all"):
        bench_bulk(args, model_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
