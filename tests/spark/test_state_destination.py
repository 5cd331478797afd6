"""One state per destination, end to end on local[2] with the real model: a table embedded into three
places (two vector columns and a target table) keeps each place current without redoing the others.
The fast, model-free versions of these checks are in tests/unit/test_state_destination.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sqlembed.db.targets import TableSpec
from sqlembed.db.targets.sqlite import STATE as SQLITE_STATE
from sqlembed.engine.embedder import Embedder
from sqlembed.spark.job import BulkJob, run
from tests.spark.conftest import sentences
from tests.support.engines import engine_settings, open_engine

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> Embedder:
    return open_engine(model_dir)


def _job(url: str, model_dir: Path, text: str, vector: str, **kw: Any) -> BulkJob:
    return BulkJob(TableSpec(url, "docs", "id", text, vector, **kw), engine_settings(model_dir, threads=1),
                   batch_rows=64)


def test_two_vector_columns_and_a_target_table_each_stay_current(spark_local: Any, model_dir: Path,
                                                                 engine: Embedder, tmp_path: Path) -> None:
    texts = sentences(80)
    db = tmp_path / "three.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body TEXT, title_vec TEXT, body_vec TEXT)")
    conn.executemany("INSERT INTO docs (id, title, body) VALUES (?, ?, ?)",
                     [(i + 1, texts[i], texts[40 + i]) for i in range(40)])
    conn.commit()
    url = f"sqlite:///{db}"
    jobs = {"title": _job(url, model_dir, "title", "title_vec"), "body": _job(url, model_dir, "body", "body_vec"),
            "target": _job(url, model_dir, "body", "body_vec", target_table="doc_vectors")}

    def embedded() -> dict[str, int]:
        return {name: run(spark_local, job).rows_embedded for name, job in jobs.items()}

    assert embedded() == {"title": 40, "body": 40, "target": 40}
    # One state row per key used to serve all three: every run re-embedded the other columns' rows.
    assert embedded() == {"title": 0, "body": 0, "target": 0}

    conn.execute("UPDATE docs SET body = 'A body that was rewritten.' WHERE id = 7")
    conn.commit()
    # ... and the target table, whose state row the body_vec run had just refreshed, was skipped.
    assert embedded() == {"title": 0, "body": 1, "target": 1}
    ref = engine.embed(["A body that was rewritten."])[0]
    for table, column in (("docs", "body_vec"), ("doc_vectors", "body_vec")):
        got = np.asarray(json.loads(conn.execute(f"SELECT {column} FROM {table} WHERE id = 7").fetchone()[0]),
                         dtype=np.float32)
        assert float(got @ ref) >= 0.99999, table
    assert conn.execute(f"SELECT destination, COUNT(*) FROM {SQLITE_STATE} GROUP BY destination "
                        "ORDER BY destination").fetchall() == [
        ("[].[doc_vectors].[body_vec]", 40), ("[].[docs].[body_vec]", 40), ("[].[docs].[title_vec]", 40)]
    conn.close()
