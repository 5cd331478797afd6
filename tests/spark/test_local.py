"""Bulk jobs on local[2] against a real SQLite file: correctness, incrementality, retries, bad rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sqlembed.db.tables import SQLITE_STATE, TableSpec, content_hash
from sqlembed.engine.embedder import Embedder, load_embedder
from sqlembed.engine.store import ModelStore
from sqlembed.spark.job import config_from, run
from tests.spark.conftest import make_table, sentences

pytestmark = [pytest.mark.spark, pytest.mark.slow]
MODEL = "all-minilm-l6-v2-fp32"


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> Embedder:
    store = ModelStore(model_dir)
    return load_embedder(store.path(MODEL), store.get(MODEL), threads=2)


def _cfg(url: str, model_dir: Path, **kw: Any) -> Any:
    fault, marker = kw.pop("fail_slice_first_attempt", None), kw.pop("fault_marker", None)
    return config_from(TableSpec(url, kw.pop("table", "docs"), "id", "body", "embedding", **kw),
                       model_dir=str(model_dir), model_id=MODEL, batch_rows=256, threads=1,
                       fail_slice_first_attempt=fault, fault_marker=marker)


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
    result = run(spark_local, _cfg(url, model_dir, fail_slice_first_attempt=1, fault_marker=str(marker)), slices=4)
    assert marker.read_text().startswith("slice 1 failed after 256 rows"), "the first attempt really failed"
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
    with pytest.raises(InvalidInput, match="may not contain"):
        run(spark_local, _cfg(url, model_dir, where="1=1; DELETE FROM docs"))
