"""Bulk benchmark: N rows through the Spark job on local[2] into SQLite vs the in-process engine
on the same texts, in one run. Prints rows/s and the ratio (target >= 0.85x)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlembed.benchmark.corpus import paragraphs
from sqlembed.benchmark.pipeline import docs_table


def texts_for(rows: int) -> list[str]:
    base = paragraphs()
    # Cycle the real paragraphs; the row number keeps every text distinct.
    return [f"{base[i % len(base)]} (row {i})" for i in range(rows)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/bulk.py", description=__doc__)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--spark", default="local[2]")
    p.add_argument("--model-dir", help="model store (default: a temporary one, model built first)")
    p.add_argument("--batch-rows", type=int, default=512)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sqlembed.db.targets import TableSpec
    from sqlembed.engine.build import build_model
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder
    from sqlembed.engine.store import ModelStore
    from sqlembed.spark.job import BulkJob, run
    from sqlembed.spark.session import build_session, spark_conf

    model_dir = Path(args.model_dir or tempfile.mkdtemp(prefix="sqlembed-bulk-"))
    store = ModelStore(model_dir)
    manifest = build_model(store, precision="fp32")
    texts = texts_for(args.rows)

    es = EngineSettings(model_dir, manifest.name, manifest.precision)
    emb = open_embedder(es)
    emb.embed(texts[:64])
    t0 = time.perf_counter()
    emb.embed(texts)
    engine_s = time.perf_counter() - t0
    print(f"in-process engine: {args.rows} rows in {engine_s:.1f}s = {args.rows / engine_s:.1f} rows/s", flush=True)

    db = Path(tempfile.mkdtemp(prefix="sqlembed-bulk-db-")) / "bulk.db"
    docs_table(db, texts)
    t0 = time.perf_counter()
    spark = build_session(spark_conf(args.spark, gpu=False))
    session_s = time.perf_counter() - t0
    job = BulkJob(TableSpec(f"sqlite:///{db}", "docs", "id", "body", "embedding"), es.with_threads(1),
                  batch_rows=args.batch_rows)
    result = run(spark, job)
    spark.stop()
    job_s = result.seconds
    assert result.rows_embedded == args.rows, result
    print(f"spark job ({args.spark}, SQLite): {result.rows_embedded} rows in {job_s:.1f}s = "
          f"{result.rows_embedded / job_s:.1f} rows/s (+{session_s:.1f}s to start the session)")
    print(f"ratio job / engine: {engine_s / job_s:.2f}x   including session start: "
          f"{engine_s / (job_s + session_s):.2f}x   (target >= 0.85x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
