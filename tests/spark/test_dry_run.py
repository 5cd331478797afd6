"""A job's dry run (POST /v1/jobs with dry_run, embed-table --dry-run) against the truth on SQLite:
the rows the real job then reads, the texts' bytes, the model's tokens over every pending row."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sqlembed.benchmark.corpus import paragraphs
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.opener import open_embedder
from sqlembed.settings import Settings
from tests.spark.conftest import make_table
from tests.support.server import ServerThread, with_settings

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SAMPLE = 60
"""Well below the rows pending, so the token figure is an estimate from a sample, as at scale."""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dryrun") / "docs.db"
    # Real paragraphs of every length (some past the model's 256 tokens), a NULL and an empty text.
    make_table(path, [*paragraphs(400, min_chars=40), None, ""])
    return path


@pytest.fixture(scope="module")
def server(base_settings: Settings, spark_local: Any, db: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = with_settings(base_settings, databases=json.dumps({"app": f"sqlite:///{db}"}),
                             state_dir=tmp_path_factory.mktemp("state"), dry_run_sample_rows=SAMPLE)
    srv = ServerThread(settings, spark_factory=lambda: spark_local).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def engine(base_settings: Settings) -> Iterator[Embedder]:
    emb = open_embedder(base_settings.engine_settings())
    yield emb
    emb.close()


BODY = {"db": "app", "table": "docs", "key": "id", "text": "body", "vector": "embedding"}


def _dry(url: str, **extra: Any) -> dict[str, Any]:
    r = httpx.post(url + "/v1/jobs", json={**BODY, **extra, "dry_run": True}, timeout=120)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _run(url: str, **extra: Any) -> dict[str, Any]:
    job = httpx.post(url + "/v1/jobs", json={**BODY, **extra}).json()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        got = dict(httpx.get(f"{url}/v1/jobs/{job['id']}").json())
        if got["state"] in ("succeeded", "failed", "cancelled"):
            assert got["state"] == "succeeded", got["last_error"]
            return got
        time.sleep(0.3)
    raise AssertionError("job did not finish")


def _snapshot(db: Path) -> tuple[Any, ...]:
    """The user's tables and rows, and the state rows. SQLite's check creates its empty bookkeeping
    tables (sqlembed_*) as every submission's check does; a dry run must add no row anywhere."""
    with sqlite3.connect(db) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = conn.execute("SELECT id, body, embedding FROM docs ORDER BY id").fetchall()
        bookkeeping = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                       for t in tables if t.startswith("sqlembed_")}
    return tuple(t for t in tables if not t.startswith("sqlembed_")), tuple(rows), sum(bookkeeping.values())


def _tokens(engine: Embedder, texts: list[str]) -> int:
    prompt = "passage" if engine.manifest.prompt_for("passage") is not None else None
    return sum(len(ids) for ids in engine.tokenize(texts, input_type=prompt))


def _pending_texts(db: Path, ids: list[int] | None = None) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, body FROM docs ORDER BY id").fetchall()
    return [b for i, b in rows if b and (ids is None or i in ids)]


def test_dry_run_matches_the_job_that_follows_and_writes_nothing(server: ServerThread, db: Path,
                                                                 engine: Embedder) -> None:
    url = server.url
    jobs_before = len(httpx.get(url + "/v1/jobs").json()["jobs"])
    before = _snapshot(db)
    dry = _dry(url)
    assert _snapshot(db) == before, "a dry run wrote to the database"
    assert len(httpx.get(url + "/v1/jobs").json()["jobs"]) == jobs_before, "a dry run recorded a job"

    texts = _pending_texts(db)
    assert dry["rows_pending"] == 402 and dry["mode"] == "hash"
    assert dry["text_bytes"] == sum(len(t.encode()) for t in texts)
    truth = _tokens(engine, texts)
    assert dry["sample_rows"] == SAMPLE
    assert abs(dry["tokens_estimate"] - truth) <= 0.2 * truth, (dry["tokens_estimate"], truth)
    assert dry["rate"]["source"].startswith("measured") and dry["rate"]["rows_per_s"] > 0
    assert [e["workers"] for e in dry["estimates"]] == [1, 2, 4, 8]
    one = dry["estimates"][0]["seconds"]
    assert one == pytest.approx(402 / dry["rate"]["rows_per_s"], rel=0.01, abs=0.1)
    assert [e["seconds"] for e in dry["estimates"]] == pytest.approx([one, one / 2, one / 4, one / 8], abs=0.1)
    assert "cost" not in dry["estimates"][0] and dry["price_per_worker_hour"] is None

    # The job reads exactly the rows the dry run counted (its NULL and empty texts fail).
    job = _run(url)
    assert job["rows_total"] == dry["rows_pending"]
    assert (job["rows_done"], job["rows_failed"]) == (400, 2)

    # Change some texts, clear one vector: the dry run counts what the next job will read.
    with sqlite3.connect(db) as conn:
        conn.executemany("UPDATE docs SET body = body || ' (edited)' WHERE id = ?", [(i,) for i in range(5, 300, 10)])
        conn.execute("UPDATE docs SET embedding = NULL WHERE id = 7")
    changed = [*range(5, 300, 10), 7]
    again = _dry(url)
    assert again["rows_pending"] == len(changed) + 2  # and the two rows without a text, which always fail
    assert again["text_bytes"] == sum(len(t.encode()) for t in _pending_texts(db, changed))
    assert _run(url)["rows_total"] == again["rows_pending"]


def test_dry_run_of_a_target_table_not_created_yet_creates_nothing(server: ServerThread, db: Path) -> None:
    dry = _dry(server.url, target_table="docs_vectors")
    assert dry["rows_pending"] == 402
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'docs_vectors'").fetchone() is None


def test_chunk_job_tokens_count_every_chunk(server: ServerThread, db: Path, engine: Embedder) -> None:
    dry = _dry(server.url, chunk_table="docs_chunks", chunk_tokens=64, chunk_overlap=8)
    texts = _pending_texts(db)
    # The truth: every chunk the executors would embed (spark/partition.chunk_pieces), tokenized.
    from sqlembed.spark.partition import chunk_pieces

    class Eid:
        chunk_tokens, chunk_overlap = 64, 8
        prompt = "passage" if engine.manifest.prompt_for("passage") is not None else None

    pieces = [c.text for cs in chunk_pieces(engine, Eid(), texts) for c in cs]  # type: ignore[arg-type]
    truth = _tokens(engine, pieces)
    assert len(pieces) > len(texts), "no text was long enough to be chunked"
    assert abs(dry["tokens_estimate"] - truth) <= 0.2 * truth, (dry["tokens_estimate"], truth)


def test_configured_rate_and_price(base_settings: Settings, db: Path, tmp_path: Path) -> None:
    settings = with_settings(base_settings, databases=json.dumps({"app": f"sqlite:///{db}"}), state_dir=tmp_path,
                             worker_rows_per_s=50.0, worker_hour_price=3.2, price_currency="EUR",
                             dry_run_sample_rows=SAMPLE)
    srv = ServerThread(settings).start()
    try:
        dry = _dry(srv.url, target_table="other_vectors")
    finally:
        srv.stop()
    assert dry["rate"] == {"rows_per_s": 50.0, "source": "configured: SQLEMBED_WORKER_ROWS_PER_S (rows/s per worker)"}
    assert dry["currency"] == "EUR" and dry["price_per_worker_hour"] == 3.2
    for e in dry["estimates"]:
        assert e["seconds"] == pytest.approx(402 / (50.0 * e["workers"]), abs=0.1)
        assert e["cost"] == pytest.approx(e["workers"] * e["seconds"] / 3600 * 3.2, abs=1e-3)


def test_bad_dry_run_is_refused_like_a_submission(server: ServerThread) -> None:
    r = httpx.post(server.url + "/v1/jobs", json={**BODY, "table": "missing", "dry_run": True})
    assert r.status_code == 400 and "not found" in r.json()["error"]["message"]


def test_embed_table_dry_run(base_settings: Settings, db: Path, tmp_path: Path) -> None:
    env = {"SQLEMBED_MODEL_DIR": str(base_settings.model_dir), "SQLEMBED_DRY_RUN_SAMPLE_ROWS": str(SAMPLE),
           "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    before = _snapshot(db)
    out = subprocess.run([sys.executable, "-m", "sqlembed", "embed-table", "--db", f"sqlite:///{db}", "--table",
                          "docs", "--key", "id", "--text", "body", "--vector", "embedding", "--target-table",
                          "cli_vectors", "--dry-run", "--json"], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["rows_pending"] == 402 and answer["dry_run"] is True
    assert [e["workers"] for e in answer["estimates"]] == [1, 2, 4, 8]
    assert _snapshot(db) == before
    text = subprocess.run([sys.executable, "-m", "sqlembed", "embed-table", "--db", f"sqlite:///{db}", "--table",
                           "docs", "--key", "id", "--text", "body", "--vector", "embedding", "--target-table",
                           "cli_vectors", "--dry-run"], capture_output=True, text=True, env=env, timeout=180)
    assert text.returncode == 0, text.stderr
    assert "rows pending   402" in text.stdout and "8 workers" in text.stdout
