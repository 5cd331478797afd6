"""Living tables and long documents, measured (bench/chunks.py; run on demand, never in CI).

``sync``: a 100,000-row SQLite table whose vectors are all current, 100 rows then changed; one
re-sync each way, from the same copy of the file: the hash comparison in the database (every row
hashed by SQLite, only the changed texts read), the change queue (only the changed keys looked at),
and, for the record, the path before this release (every text read into Python and hashed there).
The embedding work (100 rows) is the same in all three; the rest is what the table size costs.

``throughput``: long documents through a chunked bulk task vs the same passages as plain rows
(same tokens), and the in-process engine on those passages: chunks/s against rows/s.

``retrieval``: the standard library's longer module docstrings as documents among all of them;
queries are each long document's first sentence, and a sentence from past the model's 256 tokens;
recall@1/@10 with one truncated vector per document, the chunk-mean vector, and the best of
128-token chunks.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import shutil
import sqlite3
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sqlembed.benchmark.bulk import texts_for
from sqlembed.benchmark.machine import describe
from sqlembed.benchmark.pipeline import docs_table, run_in_process


def _model(model_dir: str | None) -> tuple[Path, Any]:
    from sqlembed.engine.build import build_model
    from sqlembed.engine.store import ModelStore

    path = Path(model_dir or tempfile.mkdtemp(prefix="sqlembed-chunks-"))
    return path, build_model(ModelStore(path), precision="fp32")


def bench_sync(args: argparse.Namespace) -> None:
    from sqlembed.db.targets import TableSpec, WriteRow, content_hash, open_target
    from sqlembed.db.targets.sqlite import STATE
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder
    from sqlembed.spark.job import BulkJob, decide, plan

    model_dir, manifest = _model(args.model_dir)
    es = EngineSettings(model_dir, manifest.name, manifest.precision, threads=1)
    emb = open_embedder(es)
    work = Path(tempfile.mkdtemp(prefix="sqlembed-sync-"))
    db = work / "base.db"
    texts = texts_for(args.rows)
    docs_table(db, texts)
    spec = TableSpec(f"sqlite:///{db}", "docs", "id", "body", "embedding")
    job = BulkJob(spec, es, batch_rows=256, sync="changes")
    # Every row current: its vector and state written as a finished job would have (random unit
    # vectors; what the re-sync costs does not depend on them).
    target = open_target(spec)
    p = plan(job, 1, target, decide(job, target))
    info, eid = p.decision.info, p.decision.eid
    target.enable_tracking(info)
    rng = np.random.default_rng(0)
    for i in range(0, len(texts), 5000):
        vecs = rng.standard_normal((min(5000, len(texts) - i), manifest.dimensions)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        target.write(info, [WriteRow(i + j + 1, content_hash(texts[i + j]), v) for j, v in enumerate(vecs)], eid)
    target.save_sync_version(info, eid, target.current_version(info))
    target.close()
    changed = rng.choice(np.arange(1, args.rows + 1), size=args.changed, replace=False)
    conn = sqlite3.connect(db)
    conn.executemany("UPDATE docs SET body = body || ' (edited)' WHERE id = ?", [(int(k),) for k in changed])
    conn.commit()
    conn.close()
    print(f"# sync: {args.rows:,} rows, {args.changed} changed; {describe()}")
    for mode in ("hash", "changes"):
        copy = work / f"{mode}.db"
        shutil.copy(db, copy)
        spec_m = TableSpec(f"sqlite:///{copy}", "docs", "id", "body", "embedding")
        plan_, seen, seconds = run_in_process(BulkJob(spec_m, es, batch_rows=256, sync=mode), emb)
        examined = plan_.total if plan_.mode == "hash" else len(changed)
        print(f"{mode:8s} rows examined {examined:>8,}  rows read {seen.rows:>6,}  text read "
              f"{seen.text_bytes / 1e3:8.1f} kB  wall {seconds:6.2f}s = embedding {seen.embed_s:5.2f}s + "
              f"the rest {seconds - seen.embed_s:5.2f}s")
    # The path before this release: every text into Python, hashed there, compared with the state.
    copy = work / "old.db"
    shutil.copy(db, copy)
    t0 = time.perf_counter()
    conn = sqlite3.connect(copy)
    state = dict(conn.execute(f"SELECT row_key, content_hash FROM {STATE}"))  # noqa: S608  # nosec B608 - a constant
    read = pending = 0
    for key, body in conn.execute("SELECT id, body FROM docs"):
        read += len(body.encode())
        if state.get(str(key)) != hashlib.sha256(body.encode("utf-16-le")).digest():
            pending += 1
    conn.close()
    print(f"{'before':8s} rows examined {args.rows:>8,}  rows read {args.rows:>6,}  text read "
          f"{read / 1e3:8.1f} kB  wall {time.perf_counter() - t0:6.2f}s (finding the {pending} pending rows only)")


def _long_docs(n: int) -> list[str]:
    from sqlembed.benchmark.corpus import paragraphs

    ps = paragraphs(min_chars=200)
    return ["\n\n".join(ps[(i * 5 + j) % len(ps)] for j in range(5)) + f" (document {i})" for i in range(n)]


def bench_throughput(args: argparse.Namespace) -> None:
    from sqlembed.db.targets import TableSpec
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder
    from sqlembed.spark.job import BulkJob

    model_dir, manifest = _model(args.model_dir)
    es = EngineSettings(model_dir, manifest.name, manifest.precision, threads=args.threads)
    emb = open_embedder(es)
    docs = _long_docs(args.docs)
    passages = [c.text for d in docs for c in emb.tokenizer.chunks(d, args.chunk_tokens)]
    tokens = sum(len(t) for t in emb.tokenize(passages))
    work = Path(tempfile.mkdtemp(prefix="sqlembed-chunkbench-"))
    print(f"# throughput: {len(docs)} documents = {len(passages)} chunks of <= {args.chunk_tokens} tokens "
          f"({tokens:,} tokens), {args.threads} engine thread(s); {describe()}")
    emb.embed(passages[:64])
    t0 = time.perf_counter()
    emb.embed(passages)
    engine_s = time.perf_counter() - t0
    print(f"in-process engine on the passages: {len(passages) / engine_s:8.1f} passages/s")
    for name, rows, extra in (("chunked documents", docs, {"chunk_table": "doc_chunks",
                                                           "chunk_tokens": args.chunk_tokens}),
                              ("passages as rows", passages, {})):
        db = work / f"{name.split()[0]}.db"
        docs_table(db, rows)
        job = BulkJob(TableSpec(f"sqlite:///{db}", "docs", "id", "body", "embedding", **extra), es, batch_rows=64)
        _, seen, seconds = run_in_process(job, emb)
        print(f"{name:18s}: {len(rows):6d} rows in {seconds:6.1f}s = {len(passages) / seconds:8.1f} chunks/s "
              f"({engine_s / seconds:.2f}x the engine; embedding {seen.embed_s:.1f}s of it)")


def _stdlib_docs() -> list[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for p in sorted(root.rglob("*.py")):
        if {"test", "tests", "site-packages", "idlelib"} & set(p.parts):
            continue
        try:
            doc = ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if doc and len(doc) > 80:
            out.append((str(p.relative_to(root)), doc))
    return out


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def bench_retrieval(args: argparse.Namespace) -> None:
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.embedder import mean_of_chunks
    from sqlembed.engine.opener import open_embedder

    model_dir, manifest = _model(args.model_dir)
    emb = open_embedder(EngineSettings(model_dir, manifest.name, manifest.precision, threads=args.threads))
    tok = emb.tokenizer
    docs = _stdlib_docs()
    texts = [d for _, d in docs]
    long_ids = [i for i, t in enumerate(texts) if len(tok.token_offsets(t)) > tok.max_length - 2]
    first_q, late_q = [], []
    for i in long_ids:
        sentences = [s.strip() for s in _SENTENCE.split(texts[i].replace("\n", " ")) if len(s.split()) >= 5]
        if not sentences:
            continue
        first_q.append((i, sentences[0]))
        offsets = tok.token_offsets(texts[i].replace("\n", " "))
        past = offsets[tok.max_length - 2][0] if len(offsets) > tok.max_length - 2 else len(texts[i])
        flat = texts[i].replace("\n", " ")
        late = [s for s in sentences if flat.find(s) >= past]
        if late:
            late_q.append((i, late[len(late) // 2]))
    print(f"# retrieval: {len(texts)} stdlib module docstrings, {len(long_ids)} longer than "
          f"{tok.max_length} tokens; {len(first_q)} first-sentence and {len(late_q)} late-sentence queries; "
          f"{describe()}")
    truncated = emb.embed(texts)
    enc, counts = emb.encode_chunked(texts)
    means = mean_of_chunks(emb.embed_encoded(enc.ids), counts, [len(t) for t in enc.ids])
    chunk_owner, chunk_texts = [], []
    for i, t in enumerate(texts):
        for c in tok.chunks(t, args.chunk_tokens, args.chunk_overlap):
            chunk_owner.append(i)
            chunk_texts.append(c.text)
    chunk_vecs = emb.embed(chunk_texts)
    owner = np.asarray(chunk_owner)

    def recall(queries: list[tuple[int, str]], scorer: Any) -> tuple[float, float]:
        if not queries:
            return 0.0, 0.0
        qv = emb.embed([q for _, q in queries])
        hit1 = hit10 = 0
        for (doc, _), v in zip(queries, qv, strict=True):
            ranked = np.argsort(-scorer(v))
            hit1 += int(ranked[0] == doc)
            hit10 += int(doc in ranked[:10])
        return hit1 / len(queries), hit10 / len(queries)

    def best_chunk(v: np.ndarray) -> np.ndarray:
        scores = np.full(len(texts), -np.inf, dtype=np.float32)
        np.maximum.at(scores, owner, chunk_vecs @ v)
        return scores

    methods = {"truncate (first 256 tokens)": lambda v: truncated @ v,
               "chunk-mean (online opt-in)": lambda v: means @ v,
               f"best of {args.chunk_tokens}-token chunks": best_chunk}
    for name, scorer in methods.items():
        f1, f10 = recall(first_q, scorer)
        l1, l10 = recall(late_q, scorer)
        print(f"{name:30s} first sentence R@1 {f1:.3f} R@10 {f10:.3f} | late sentence R@1 {l1:.3f} R@10 {l10:.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/chunks.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["sync", "throughput", "retrieval", "all"])
    p.add_argument("--model-dir")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--changed", type=int, default=100)
    p.add_argument("--docs", type=int, default=200)
    p.add_argument("--chunk-tokens", type=int, default=128)
    p.add_argument("--chunk-overlap", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for part, fn in (("sync", bench_sync), ("throughput", bench_throughput), ("retrieval", bench_retrieval)):
        if args.part in (part, "all"):
            fn(args)
    return 0
