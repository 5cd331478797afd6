"""A bulk job's driver process: ``sqlembed embed-table`` (and spark-submit running it).

Builds the process's ``BulkSettings`` from ``Settings`` (the service's job runner uses the same
function), the Spark session, and runs the job once or on a schedule (``--watch``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from typing import Any

from sqlembed.db.targets import TableSpec
from sqlembed.jobs.dryrun import Pricing
from sqlembed.run.engine import ensure_model
from sqlembed.settings import Settings
from sqlembed.spark.job import BulkSettings, Decision, JobResult, Progress, decide, run
from sqlembed.spark.session import build_session, spark_conf

log = logging.getLogger("sqlembed")


def bulk_settings(settings: Settings) -> BulkSettings:
    return BulkSettings(engine=replace(settings.engine_settings(), threads=settings.task_threads),
                        batch_rows=settings.job_batch_rows, db_retry_s=settings.db_retry_s,
                        vector_type=settings.vector_type, progress_host=settings.progress_host,
                        progress_port=settings.progress_port)


def pricing(settings: Settings) -> Pricing:
    return Pricing(sample_rows=settings.dry_run_sample_rows, worker_rows_per_s=settings.worker_rows_per_s,
                   price_per_worker_hour=settings.worker_hour_price, currency=settings.price_currency)


def progress_line(p: Progress, started: float) -> str:
    elapsed = time.monotonic() - started
    share = min(1.0, p.rows_read / p.rows_total) if p.rows_total else 0.0
    width = 30
    bar = "#" * int(share * width) + "-" * (width - int(share * width))
    eta = f"{elapsed / share - elapsed:5.0f}s" if 0 < share < 1 else "  -  "
    rows = f"{p.rows_done:,} rows, {p.rows_per_s:,.0f} rows/s" if p.rows_done else "embedding..."
    return f"\r[{bar}] {p.rows_read:,}/{p.rows_total:,} rows checked  {rows}  ETA {eta}  {elapsed:5.0f}s"


def result_line(table: str, result: JobResult) -> str:
    rate = result.rows_embedded / result.seconds if result.seconds else 0.0
    return (f"{table}: {result.rows_embedded} rows embedded, {result.rows_failed} failed (NULL or empty "
            f"text), {result.rows_read} read, {result.rows_deleted} deleted, {result.dimensions} dimensions, "
            f"{result.seconds:.1f}s, {rate:.1f} rows/s, {result.mode}"
            + (f", GPUs {','.join(result.gpus)}" if result.gpus else ""))


def dry_run_table(settings: Settings, spec: TableSpec, *, as_json: bool = False, **fields: Any) -> int:
    """``embed-table --dry-run``: the job checked and estimated, nothing written, no Spark started."""
    from sqlembed.jobs.dryrun import dry_run
    from sqlembed.run.engine import open_engine

    job = bulk_settings(settings).job(spec, **fields)
    engine = open_engine(settings)
    try:
        answer = dry_run(job, engine, pricing(settings))
    finally:
        engine.close()
    print(json.dumps(answer, indent=2) if as_json else dry_run_text(spec.table, answer), flush=True)
    return 0


def dry_run_text(table: str, answer: dict[str, Any]) -> str:
    lines = [f"{table}: dry run, nothing written",
             f"  rows pending   {answer['rows_pending']:,} ({answer['mode']})",
             f"  text bytes     {answer['text_bytes']:,}",
             f"  tokens (est.)  {answer['tokens_estimate']:,} (from {answer['sample_rows']:,} sampled rows)",
             f"  rate           {answer['rate']['rows_per_s']:,.1f} rows/s per worker; {answer['rate']['source']}"]
    for e in answer["estimates"]:
        cost = f"  {e['cost']:,.2f} {answer['currency']}" if "cost" in e else ""
        lines.append(f"  {e['workers']} worker{'s' if e['workers'] > 1 else ' '}      "
                     f"{_duration(e['seconds'])}{cost}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def embed_table(settings: Settings, spec: TableSpec, *, spark_master: str | None = None, watch: bool = False,
                interval_s: float | None = None, **fields: Any) -> int:
    """Run one job (``watch``: one sync per interval until interrupted). ``fields``: per-job
    options of ``BulkJob`` (dimensions, batch_rows, sync, expect_database)."""
    ensure_model(settings)
    job = bulk_settings(settings).job(spec, **fields)
    # Decided before Spark starts (a model not built, a table or column missing: one clear error
    # at once); the first sync runs with this decision, later ones decide again (the table may change).
    decision: Decision | None = decide(job)
    spark = build_session(spark_conf(spark_master or settings.spark_master, gpu=settings.spark_gpu,
                                     task_gpu_amount=settings.spark_task_gpu_amount))
    tty = sys.stderr.isatty()
    interval = interval_s or settings.sync_interval_s
    try:
        while True:
            started = time.monotonic()

            def show(p: Progress, started: float = started) -> None:
                if tty:
                    sys.stderr.write(progress_line(p, started))
                    sys.stderr.flush()

            # Decided on every sync: a table altered between two syncs is seen as it is now.
            result = run(spark, job, decision=decision, on_progress=show)
            decision = None
            if tty and result.rows_read:
                sys.stderr.write("\n")
            print(result_line(spec.table, result), flush=True)
            if not watch:
                return 0
            # A sync that takes longer than the interval starts the next one at once, never two at a time.
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 130
    finally:
        spark.stop()

