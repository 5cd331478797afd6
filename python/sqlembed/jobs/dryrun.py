"""A job's dry run: how many rows it would embed, how many tokens, how long on 1..8 workers, at what cost.

Nothing is written and no job is recorded: the table is checked as a submission checks it
(``spark.job.decide``), the pending rows are counted by the job's own selection
(``spark.job.pending``), and a sample of them is tokenized and embedded here to measure the rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlembed.db.targets import PendingSummary, open_target
from sqlembed.engine.embedder import Embedder
from sqlembed.spark.job import BulkJob, Decision, decide, pending
from sqlembed.spark.partition import chunk_pieces

WORKERS = (1, 2, 4, 8)
_RATE_BUDGET_S = 2.0
"""Embedding the sample stops after this long: enough batches for a steady rate, short enough to
answer within SQL Server's wait (sp_invoke_external_rest_endpoint's @timeout, at most 230 s)."""


@dataclass(frozen=True)
class Pricing:
    """What the estimates assume; built from settings by the composition root."""

    sample_rows: int = 1000
    worker_rows_per_s: float | None = None
    """A configured per-worker (per-GPU) rate; None: measure this host's engine on the sample."""
    price_per_worker_hour: float | None = None
    currency: str = "USD"


def dry_run(job: BulkJob, embedder: Embedder, pricing: Pricing, decision: Decision | None = None) -> dict[str, Any]:
    """The dry run's answer (api/schemas/jobs.DryRun). Blocking: database round trips and inference."""
    target = open_target(job.spec, retry_s=job.db_retry_s)
    try:
        decision = decision if decision is not None else decide(job, target)
        found, mode = pending(job, decision, target, pricing.sample_rows)
    finally:
        target.close()
    tokens, pieces = _tokens(embedder, decision, found)
    rate, source = _rate(embedder, decision, pieces, pricing)
    estimates: list[dict[str, Any]] = []
    for n in WORKERS:
        seconds = found.rows / (rate * n) if rate > 0 else 0.0
        e: dict[str, Any] = {"workers": n, "seconds": round(seconds, 1)}
        if pricing.price_per_worker_hour is not None:
            e["cost"] = round(n * seconds / 3600 * pricing.price_per_worker_hour, 4)
        estimates.append(e)
    return {"dry_run": True, "rows_pending": found.rows, "text_bytes": found.text_bytes,
            "tokens_estimate": tokens, "sample_rows": len(found.sample), "mode": mode,
            "dimensions": decision.eid.dimensions,
            "rate": {"rows_per_s": round(rate, 2), "source": source}, "estimates": estimates,
            "currency": pricing.currency if pricing.price_per_worker_hour is not None else None,
            "price_per_worker_hour": pricing.price_per_worker_hour}


def _tokens(embedder: Embedder, decision: Decision, found: PendingSummary) -> tuple[int, list[list[str]]]:
    """Tokens the job would feed the model (prompt, special tokens and truncation or chunks as the
    executors do), counted over the sample and scaled to every pending row; and each sampled row's
    pieces (one text, or its chunks)."""
    if not found.sample:
        return 0, []
    eid = decision.eid
    if decision.info.chunked:
        pieces = [[c.text for c in cs] for cs in chunk_pieces(embedder, eid, found.sample)]
    else:
        pieces = [[t] for t in found.sample]
    flat = [p for ps in pieces for p in ps]
    counted = sum(len(ids) for ids in embedder.tokenize(flat, input_type=eid.prompt)) if flat else 0
    return round(counted * found.rows / len(found.sample)), pieces


def _rate(embedder: Embedder, decision: Decision, pieces: list[list[str]], pricing: Pricing) -> tuple[float, str]:
    """Rows per second per worker, and where the figure comes from."""
    if pricing.worker_rows_per_s is not None:
        return pricing.worker_rows_per_s, "configured: SQLEMBED_WORKER_ROWS_PER_S (rows/s per worker)"
    if not pieces:
        return 0.0, "nothing to embed"
    embedder.embed(pieces[0], input_type=decision.eid.prompt)  # warm: the first call pays for allocations
    done, batch, t0 = 0, 64, time.perf_counter()
    while done < len(pieces) and time.perf_counter() - t0 < _RATE_BUDGET_S:
        rows = pieces[done:done + batch]
        embedder.embed([p for ps in rows for p in ps], input_type=decision.eid.prompt)
        done += len(rows)
    elapsed = time.perf_counter() - t0
    rate = done / elapsed if elapsed > 0 else 0.0
    return rate, (f"measured: {done} sampled rows embedded by this host's engine "
                  f"({embedder.backend.name}, {embedder.manifest.id}) in {elapsed:.2f} s")
