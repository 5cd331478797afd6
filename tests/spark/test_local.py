"""Bulk jobs on local[2] against a real SQLite file: correctness, incrementality, retries, bad rows."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sqlembed.db.targets import TableSpec, content_hash
from sqlembed.db.targets.sqlite import STATE as SQLITE_STATE
from sqlembed.engine.embedder import Embedder
from sqlembed.errors import InvalidInput
from sqlembed.spark.job import BulkJob, run
from tests.spark.conftest import make_table, sentences
from tests.support.engines import engine_settings, open_engine

pytestmark = [pytest.mark.spark, pytest.mark.slow]
MODEL = "all-minilm-l6-v2-fp32"


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> Embedder:
    return open_engine(model_dir)


def _cfg(url: str, model_dir: Path, **kw: Any) -> BulkJob:
    job = {k: kw.pop(k) for k in ("dimensions", "page_rows", "vector_type") if k in kw}
    return BulkJob(TableSpec(url, kw.pop("table", "docs"), "id", "body", "embedding", **kw),
                   engine_settings(model_dir, threads=1), batch_rows=256, **job)


def arm_fault(plan: dict[str, Any]) -> Path:
    """Arm the test-only fault plugin the executors load (tests/support/faultplugin)."""
    import os

    path = Path(os.environ["SQLEMBED_TEST_FAULT_PLAN"])
    path.write_text(json.dumps(plan))
    return path


def _vectors(path: Path, table: str = "docs") -> dict[int, np.ndarray]:
    conn = sqlite3.connect(path)
    rows = conn.execute(f"SELECT id, embedding FROM {table} WHERE embedding IS NOT NULL").fetchall()
    conn.close()
    return {k: np.asarray(json.loads(v), dtype=np.float32) for k, v in rows}


def test_5000_rows_then_nothing_then_exactly_the_edited(spark_local: Any, model_dir: Path, engine: Embedder,
                                                        tmp_path: Path) -> None:
    texts = sentences(5000)
    db = tmp_path / "bulk.db"
    url = make_table(db, list(texts))
    first = run(spark_local, _cfg(url, model_dir))
    assert (first.rows_embedded, first.rows_failed) == (5000, 0)

    got = _vectors(db)
    assert sorted(got) == list(range(1, 5001))
    ref = engine.embed(texts)
    cos = np.array([float(got[i + 1] @ ref[i]) for i in range(5000)])
    assert cos.min() >= 0.99999

    conn = sqlite3.connect(db)
    state = conn.execute(f"SELECT row_key, content_hash, model_id FROM {SQLITE_STATE}").fetchall()
    assert len(state) == 5000 and {m for _, _, m in state} == {MODEL}
    assert dict((k, h) for k, h, _ in state)["7"] == content_hash(texts[6])

    second = run(spark_local, _cfg(url, model_dir))
    assert second.rows_embedded == 0 and second.rows_read == 0

    edited = {3, 77, 512, 1000, 2048, 2500, 3333, 4000, 4999, 5000}
    conn.executemany("UPDATE docs SET body = body || ' (revised)' WHERE id = ?", [(i,) for i in edited])
    conn.commit()
    before = _vectors(db)
    third = run(spark_local, _cfg(url, model_dir))
    assert third.rows_embedded == 10
    after = _vectors(db)
    changed = {k for k in after if not np.array_equal(after[k], before[k])}
    assert changed == edited
    new_text = conn.execute("SELECT body FROM docs WHERE id = 512").fetchone()[0]
    assert float(after[512] @ engine.embed([new_text])[0]) >= 0.99999
    conn.close()


def test_failed_task_attempt_is_retried_without_loss_or_duplicates(spark_local: Any, model_dir: Path,
                                                                   tmp_path: Path) -> None:
    texts = sentences(1200)
    db = tmp_path / "retry.db"
    url = make_table(db, list(texts))
    marker = tmp_path / "fault.txt"
    plan = arm_fault({"after_writes": 1, "marker": str(marker)})
    try:
        result = run(spark_local, _cfg(url, model_dir), slices=4)
    finally:
        plan.unlink()
    assert re.fullmatch(r"partition \d+ failed after 256 rows\n", marker.read_text()), "a first attempt really failed"
    assert result.rows_failed == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM docs WHERE embedding IS NULL").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 1200
    assert conn.execute(f"SELECT COUNT(*), COUNT(DISTINCT row_key) FROM {SQLITE_STATE}").fetchone() == (1200, 1200)
    conn.close()
    # The retried slice's rows were written once more with identical values: a re-run finds nothing.
    assert run(spark_local, _cfg(url, model_dir)).rows_embedded == 0


def test_null_and_empty_texts_are_failed_rows_and_target_table(spark_local: Any, model_dir: Path,
                                                               tmp_path: Path) -> None:
    texts: list[str | None] = ["a real sentence", None, "", "another sentence", None]
    db = tmp_path / "bad.db"
    url = make_table(db, texts)
    result = run(spark_local, _cfg(url, model_dir, target_table="doc_vectors"))
    assert (result.rows_embedded, result.rows_failed) == (2, 3)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT id FROM doc_vectors WHERE embedding IS NOT NULL ORDER BY id").fetchall() == [(1,), (4,)]
    assert conn.execute("SELECT COUNT(*) FROM docs WHERE embedding IS NOT NULL").fetchone()[0] == 0, \
        "with a target table the source is only read"
    conn.close()


def test_identifiers_are_validated(tmp_path: Path, model_dir: Path, spark_local: Any) -> None:
    from sqlembed.errors import InvalidInput

    url = make_table(tmp_path / "v.db", ["x"])
    with pytest.raises(InvalidInput, match="plain identifiers"):
        run(spark_local, _cfg(url, model_dir, table="docs; DROP TABLE docs"))
    with pytest.raises(InvalidInput, match="not found"):
        run(spark_local, _cfg(url, model_dir, table="nope"))
    for where in ("1=1; DELETE FROM docs", "1=1) DELETE FROM docs WHERE (1=1", "id IN (SELECT id FROM docs)",
                  "length(body) > 3", "body = (SELECT max(body) FROM docs)", "nope = 1", "docs.id = 1"):
        with pytest.raises(InvalidInput, match="'where'"):
            run(spark_local, _cfg(url, model_dir, where=where))


def test_a_row_filter_embeds_only_matching_rows(spark_local: Any, model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "filter.db"
    url = make_table(db, sentences(40))
    # A comment would vanish in the parser's re-rendering, so the caller would not get what they
    # wrote: refused before any SQL runs.
    with pytest.raises(InvalidInput, match="comments"):
        run(spark_local, _cfg(url, model_dir, where="id <= 10 -- AND NOT id IN (3, 4)"))
    result = run(spark_local, _cfg(url, model_dir, where="id <= 10 AND NOT id IN (3, 4)"))
    assert (result.rows_embedded, result.rows_failed) == (8, 0)
    assert sorted(_vectors(db)) == [1, 2, 5, 6, 7, 8, 9, 10]


def test_dimensions_below_the_models_truncate_and_renormalize(spark_local: Any, model_dir: Path,
                                                              engine: Embedder, tmp_path: Path) -> None:
    texts = sentences(30)
    db = tmp_path / "dims.db"
    url = make_table(db, list(texts))
    result = run(spark_local, _cfg(url, model_dir, dimensions=128))
    assert (result.rows_embedded, result.dimensions) == (30, 128)
    got = _vectors(db)
    assert {len(v) for v in got.values()} == {128}
    full = engine.embed(texts)[:, :128]
    ref = full / np.linalg.norm(full, axis=1, keepdims=True)
    np.testing.assert_allclose(np.stack([got[i + 1] for i in range(30)]), ref, atol=1e-5)
    # The dimensions are part of what a vector was computed with: at 384 every row is pending again.
    assert run(spark_local, _cfg(url, model_dir, dimensions=128)).rows_embedded == 0
    assert run(spark_local, _cfg(url, model_dir)).rows_embedded == 30


def test_a_rerun_over_an_unchanged_table_reads_no_text(spark_local: Any, model_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "rerun.db"
    url = make_table(db, sentences(500))
    assert run(spark_local, _cfg(url, model_dir)).rows_embedded == 500
    again = run(spark_local, _cfg(url, model_dir, page_rows=64))
    assert (again.rows_read, again.rows_embedded) == (0, 0), "pending rows are decided in the database"


def test_float16_vectors_are_half_precision_and_never_mix(spark_local: Any, model_dir: Path, engine: Embedder,
                                                          tmp_path: Path) -> None:
    texts = sentences(30)
    db = tmp_path / "half.db"
    url = make_table(db, list(texts))
    assert run(spark_local, _cfg(url, model_dir, vector_type="float16")).rows_embedded == 30
    got = _vectors(db)
    ref = engine.embed(texts)
    half = ref.astype(np.float16).astype(np.float32)
    stored = np.stack([got[i + 1] for i in range(30)])
    np.testing.assert_array_equal(stored, half)  # stored as half precision
    assert np.abs(stored - ref).max() <= 2.0 ** -11, "within half-precision rounding of float32"
    # The vector type is part of what a stored vector was computed with: float32 re-embeds all.
    assert run(spark_local, _cfg(url, model_dir, vector_type="float16")).rows_embedded == 0
    assert run(spark_local, _cfg(url, model_dir)).rows_embedded == 30
    np.testing.assert_allclose(np.stack([_vectors(db)[i + 1] for i in range(30)]), ref, atol=1e-6)


def test_a_holder_never_stops_a_session_it_did_not_start(spark_local: Any) -> None:
    # A service embedded in a process that already runs Spark (here: the suite's session) gets that
    # session from getOrCreate; closing the service must leave it running for its owner.
    from sqlembed.spark.session import SessionHolder

    holder = SessionHolder()
    assert holder.get().sparkContext is spark_local.sparkContext
    holder.close()
    assert spark_local.range(10).count() == 10
