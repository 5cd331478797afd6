"""A bulk job's driver plan and its tasks' pipelines run in this process, counted: what the
database work costs without Spark's scheduling (benchmarks only)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def docs_table(db: Path, texts: list[str]) -> str:
    """A SQLite table ``docs(id, body, embedding)`` holding ``texts``; its URL."""
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, embedding TEXT)")
    conn.executemany("INSERT INTO docs (id, body) VALUES (?, ?)", list(enumerate(texts, start=1)))
    conn.commit()
    conn.close()
    return f"sqlite:///{db}"


@dataclass
class Counted:
    """What the pipeline pulled from the database: rows and bytes of text."""

    rows: int = 0
    text_bytes: int = 0
    embed_s: float = 0.0


def run_in_process(job: Any, emb: Any, slices: int = 4) -> tuple[Any, Counted, float]:
    """The driver's plan and every task's pipeline, in this process (no Spark scheduling: the
    database work is what is measured)."""
    from sqlembed.db.targets import open_target
    from sqlembed.spark.job import decide, plan
    from sqlembed.spark.partition import PartitionConfig, run_slice

    t0 = time.perf_counter()
    target = open_target(job.spec)
    p = plan(job, slices, target, decide(job, target))
    d = p.decision
    if p.deletes:
        target.delete_rows(d.info, p.deletes)
    cfg = PartitionConfig(spec=job.spec, info=d.info, engine=job.engine, manifest=d.manifest, eid=d.eid,
                          batch_rows=job.batch_rows)
    seen = Counted()
    pages, for_keys = target.pending_pages, target.pending_for_keys

    def count(rows: list[Any]) -> list[Any]:
        seen.rows += len(rows)
        seen.text_bytes += sum(len((r.text or "").encode()) for r in rows)
        return rows

    target.pending_pages = lambda *a, **k: (count(page) for page in pages(*a, **k))  # type: ignore[method-assign]
    target.pending_for_keys = lambda *a, **k: count(for_keys(*a, **k))  # type: ignore[method-assign]

    class Timed:
        """The engine, timed: what the tables cost is the rest."""

        def __init__(self) -> None:
            self.manifest, self.tokenizer = emb.manifest, emb.tokenizer

        def embed(self, *a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return emb.embed(*a, **k)
            finally:
                seen.embed_s += time.perf_counter() - t

    embedded = 0
    for lo, hi, keys in p.work:
        embedded += run_slice(target, Timed(), cfg, lo, hi, lambda *_: None, json.loads(keys) if keys else None)[1]
    if p.version is not None:
        target.save_sync_version(d.info, d.eid, p.version)
    target.close()
    return p, seen, time.perf_counter() - t0
