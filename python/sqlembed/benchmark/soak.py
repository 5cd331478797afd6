"""Soak: mixed traffic against ``sqlembed serve`` on 127.0.0.1 for a bounded time, then the verdict.

Traffic, all at once: single-text clients (the AI_GENERATE_EMBEDDINGS pattern), 64-text requests,
keyed pull batches (/v1/sqlserver/embed, every id must come back exactly once), bulk jobs one
after another on fresh tables (every row written exactly once, counted by a trigger), and 5% bad
requests mixed into the online traffic (they must get 4xx, never 5xx).

Verdict: zero 5xx, zero lost or duplicated rows, p99 of the last window within 1.5x of the first
window after warm-up, service RSS growth < 10% after warm-up, open file descriptors flat.
``python bench/soak.py --seconds 600`` is the 10-minute run; tests/hardening runs 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sqlembed.benchmark.cluster import free_port, wait_port
from sqlembed.benchmark.corpus import paragraphs

BAD_BODIES: list[tuple[str, bytes]] = [
    ("/api/embed", b'{"model": "all-minilm", "input": 42}'),
    ("/api/embed", b"{not json"),
    ("/v1/embeddings", b'{"input": [[1, 2], "x"], "encoding_format": "hex"}'),
    ("/v1/embeddings", b'{"input": ""}'),
    ("/v1/sqlserver/embed", b'{"inputs": "nope"}'),
    ("/v1/jobs", b'{"db": "app", "table": "docs; DROP TABLE docs", "key": "id", "text": "t", "vector": "v"}'),
]


@dataclass
class Sample:
    t: float
    kind: str
    status: int
    seconds: float


@dataclass
class SoakResult:
    seconds: float
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    server_errors: int = 0
    bad_sent: int = 0
    bad_refused: int = 0
    pull_ids_sent: int = 0
    pull_ids_lost_or_duplicated: int = 0
    jobs: int = 0
    job_rows: int = 0
    job_rows_missing: int = 0
    job_rows_written_twice: int = 0
    p99_first_ms: float = 0.0
    p99_last_ms: float = 0.0
    p99_ratio: float = 0.0
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_growth: float = 0.0
    fds_start: int = 0
    fds_end: int = 0
    texts_per_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.failures


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# Table names below are the soak's own (docs0, docs1, ...), never input: hence the S608 waivers.
def _make_table(db: Path, name: str, texts: list[str]) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, body TEXT, embedding TEXT)")
    conn.execute(f"CREATE TABLE {name}_writes (id INTEGER NOT NULL)")
    conn.execute(f"CREATE TRIGGER {name}_count AFTER UPDATE OF embedding ON {name} "  # nosec B608 # noqa: S608
                 f"BEGIN INSERT INTO {name}_writes (id) VALUES (new.id); END")
    conn.executemany(f"INSERT INTO {name} (id, body) VALUES (?, ?)",  # nosec B608 # noqa: S608
                     list(enumerate(texts, start=1)))
    conn.commit()
    conn.close()


def _check_table(db: Path, name: str) -> tuple[int, int]:
    conn = sqlite3.connect(db, timeout=60)
    try:
        missing = conn.execute(f"SELECT COUNT(*) FROM {name} WHERE embedding IS NULL").fetchone()[0]  # nosec B608 # noqa: S608
        twice = conn.execute(f"SELECT COUNT(*) FROM (SELECT id FROM {name}_writes GROUP BY id "  # nosec B608 # noqa: S608
                             "HAVING COUNT(*) > 1)").fetchone()[0]
        return int(missing), int(twice)
    finally:
        conn.close()


def run_soak(seconds: float, model_dir: Path, workdir: Path, *, clients: int = 12, job_rows: int = 1500,
             log: Any = None) -> SoakResult:
    import httpx

    texts = [p[:300] for p in paragraphs()][:3000]
    db = workdir / "soak.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_STATE_DIR": str(workdir / "state"),
           "SQLEMBED_DATABASES": json.dumps({"app": f"sqlite:///{db}"}), "SQLEMBED_API_KEYS": "",
           "SQLEMBED_SPARK_MASTER": "local[1]", "SQLEMBED_LOG_LEVEL": "WARNING", "SQLEMBED_THREADS": "1"}
    serve_log = (workdir / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(port)], env=env,
                            stdout=serve_log, stderr=subprocess.STDOUT)
    result = SoakResult(seconds=seconds)
    samples: list[Sample] = []
    lock = threading.Lock()
    stop = threading.Event()
    pull_counts: dict[str, int] = {}
    texts_done = [0]
    try:
        wait_port(port, 120)
        deadline = time.monotonic() + 120
        while httpx.get(url + "/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("service not ready")
            time.sleep(0.2)

        def record(kind: str, status: int, secs: float, n: int = 0) -> None:
            with lock:
                samples.append(Sample(time.monotonic(), kind, status, secs))
                if status == 200:
                    texts_done[0] += n

        def online(i: int) -> None:
            rng = random.Random(i)  # nosec B311 # noqa: S311 - load generation, not security
            with httpx.Client(base_url=url, timeout=60) as c:
                while not stop.is_set():
                    if rng.random() < 0.05:
                        path, raw = rng.choice(BAD_BODIES)
                        t0 = time.perf_counter()
                        r = c.post(path, content=raw, headers={"content-type": "application/json"})
                        record("bad", r.status_code, time.perf_counter() - t0)
                        continue
                    t0 = time.perf_counter()
                    r = c.post("/api/embed", json={"model": "all-minilm", "input": rng.choice(texts)})
                    record("single", r.status_code, time.perf_counter() - t0, 1)

        def batches(i: int) -> None:
            rng = random.Random(1000 + i)  # nosec B311 # noqa: S311
            with httpx.Client(base_url=url, timeout=120) as c:
                while not stop.is_set():
                    body = {"model": "all-minilm", "input": rng.sample(texts, 64)}
                    t0 = time.perf_counter()
                    r = c.post("/v1/embeddings", json=body)
                    record("batch64", r.status_code, time.perf_counter() - t0, 64)

        def pulls() -> None:
            rng = random.Random(7)  # nosec B311 # noqa: S311
            n = 0
            with httpx.Client(base_url=url, timeout=120) as c:
                while not stop.is_set():
                    rows = [{"id": f"p{n}-{k}", "text": rng.choice(texts)} for k in range(32)]
                    n += 1
                    t0 = time.perf_counter()
                    r = c.post("/v1/sqlserver/embed", json={"inputs": rows})
                    record("pull", r.status_code, time.perf_counter() - t0, len(rows))
                    if r.status_code == 200:
                        with lock:
                            for row in rows:
                                pull_counts.setdefault(row["id"], 0)
                            for item in r.json()["embeddings"]:
                                pull_counts[str(item["id"])] = pull_counts.get(str(item["id"]), 0) + 1
                            result.pull_ids_sent += len(rows)

        def bulk() -> None:
            k = 0
            with httpx.Client(base_url=url, timeout=60) as c:
                while not stop.is_set():
                    name = f"docs{k}"
                    _make_table(db, name, texts[k * 97 % 1000:][:job_rows])
                    r = c.post("/v1/jobs", json={"db": "app", "table": name, "key": "id", "text": "body",
                                                 "vector": "embedding", "batch_rows": 128})
                    record("job-submit", r.status_code, 0.0)
                    if r.status_code != 202:
                        continue
                    job_id = r.json()["id"]
                    while not stop.is_set():
                        job = c.get(f"/v1/jobs/{job_id}").json()
                        if job["state"] in ("succeeded", "failed", "cancelled"):
                            break
                        time.sleep(0.5)
                    else:
                        break  # the soak ended with this job still running: not counted
                    result.jobs += 1
                    if job["state"] != "succeeded":
                        result.failures.append(f"bulk job on {name} ended {job['state']}: {job.get('last_error')}")
                    missing, twice = _check_table(db, name)
                    result.job_rows += job_rows
                    result.job_rows_missing += missing
                    result.job_rows_written_twice += twice
                    k += 1

        threads = [threading.Thread(target=online, args=(i,), daemon=True) for i in range(clients)]
        threads += [threading.Thread(target=batches, args=(i,), daemon=True) for i in range(2)]
        threads += [threading.Thread(target=pulls, daemon=True), threading.Thread(target=bulk, daemon=True)]
        t_start = time.monotonic()
        for t in threads:
            t.start()
        # Warm-up covers the engine's arenas growing to the batch shapes the mix produces.
        warmup = max(20.0, seconds * 0.1)
        time.sleep(warmup)
        result.rss_start_mib, result.fds_start = _rss_mib(proc.pid), _fds(proc.pid)
        while time.monotonic() - t_start < seconds:
            time.sleep(1.0)
            if log is not None:
                elapsed = time.monotonic() - t_start
                if int(elapsed) % 60 == 0:
                    print(f"  {elapsed:5.0f} s: {len(samples)} requests, RSS {_rss_mib(proc.pid):.0f} MiB",
                          file=log, flush=True)
        result.rss_end_mib, result.fds_end = _rss_mib(proc.pid), _fds(proc.pid)
        stop.set()
        for t in threads:
            t.join(180)
        t_end = time.monotonic()
    finally:
        proc.terminate()
        proc.wait(60)
        serve_log.close()

    result.requests = len(samples)
    for s in samples:
        result.by_status[s.status] = result.by_status.get(s.status, 0) + 1
    result.server_errors = sum(1 for s in samples if s.status >= 500 or s.status < 0)
    result.bad_sent = sum(1 for s in samples if s.kind == "bad")
    result.bad_refused = sum(1 for s in samples if s.kind == "bad" and 400 <= s.status < 500)
    result.pull_ids_lost_or_duplicated = sum(1 for v in pull_counts.values() if v != 1)
    result.texts_per_s = texts_done[0] / (t_end - t_start)
    # p99 of single-text calls: the first window after warm-up against the last full window.
    # Windows of a sixth of the measured time (a minute or more in the 10-minute run); a short run
    # compares two halves so each window still holds enough samples for a p99.
    measured = seconds - warmup
    window = max(measured / 6, min(20.0, measured / 2))
    singles = [s for s in samples if s.kind == "single" and s.status == 200]
    first = [s.seconds for s in singles if t_start + warmup <= s.t < t_start + warmup + window]
    last = [s.seconds for s in singles if t_start + seconds - window <= s.t < t_start + seconds]
    if first and last:
        result.p99_first_ms = float(np.percentile(first, 99)) * 1000
        result.p99_last_ms = float(np.percentile(last, 99)) * 1000
        result.p99_ratio = result.p99_last_ms / result.p99_first_ms
    if result.rss_start_mib:
        result.rss_growth = (result.rss_end_mib - result.rss_start_mib) / result.rss_start_mib

    f = result.failures
    if result.server_errors:
        f.append(f"{result.server_errors} server errors (5xx or no response): {result.by_status}")
    if result.bad_refused != result.bad_sent:
        f.append(f"{result.bad_sent - result.bad_refused} bad requests not refused with 4xx")
    if result.pull_ids_lost_or_duplicated:
        f.append(f"{result.pull_ids_lost_or_duplicated} pull ids lost or duplicated")
    if result.job_rows_missing or result.job_rows_written_twice:
        f.append(f"bulk rows: {result.job_rows_missing} missing, {result.job_rows_written_twice} written twice")
    if not first or not last:
        f.append("not enough single-text samples to compare p99")
    elif result.p99_ratio > 1.5:
        f.append(f"p99 grew {result.p99_ratio:.2f}x ({result.p99_first_ms:.0f} -> {result.p99_last_ms:.0f} ms)")
    if result.rss_growth >= 0.10:
        f.append(f"RSS grew {result.rss_growth:.1%} after warm-up")
    if result.fds_end > result.fds_start + 8:
        f.append(f"file descriptors grew {result.fds_start} -> {result.fds_end}")
    if result.jobs == 0:
        f.append("no bulk job completed during the soak")
    return result


def report(r: SoakResult) -> str:
    lines = [
        f"soak {r.seconds:.0f} s: {r.requests} requests {dict(sorted(r.by_status.items()))}, "
        f"{r.texts_per_s:.1f} texts/s online",
        f"  5xx / no response: {r.server_errors}; bad requests refused with 4xx: {r.bad_refused}/{r.bad_sent}",
        f"  pull ids: {r.pull_ids_sent} sent, {r.pull_ids_lost_or_duplicated} lost or duplicated",
        f"  bulk: {r.jobs} jobs, {r.job_rows} rows, {r.job_rows_missing} missing, "
        f"{r.job_rows_written_twice} written twice",
        f"  single-text p99: first window {r.p99_first_ms:.0f} ms, last window {r.p99_last_ms:.0f} ms "
        f"({r.p99_ratio:.2f}x)",
        f"  service RSS {r.rss_start_mib:.0f} -> {r.rss_end_mib:.0f} MiB ({r.rss_growth:+.1%}); "
        f"fds {r.fds_start} -> {r.fds_end}",
        "  verdict: " + ("PASS" if r.ok() else "FAIL: " + "; ".join(r.failures)),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--model-dir", default=os.environ.get("SQLEMBED_MODEL_DIR", os.path.expanduser(
        "~/.cache/sqlembed/models")))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = run_soak(args.seconds, Path(args.model_dir), Path(tmp), clients=args.clients, log=sys.stdout)
    print(report(r))
    return 0 if r.ok() else 1
