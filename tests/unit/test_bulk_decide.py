"""spark/job.decide: every rule a bulk job obeys, checked once on the driver, one message each
(a real SQLite table; the fake model's manifest: no weights are needed to decide)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlembed.benchmark.pipeline import docs_table
from sqlembed.db.targets import TableSpec
from sqlembed.engine.config import EngineSettings
from sqlembed.errors import InvalidInput, SqlembedError, UnprocessableInput
from sqlembed.spark.job import BulkSettings, decide
from tests.support.fake import write_fake_model


@pytest.fixture()
def bulk(tmp_path: Path) -> tuple[BulkSettings, str]:
    url = docs_table(tmp_path / "docs.db", ["one", "two", "three"])
    es = EngineSettings(model_dir=write_fake_model(tmp_path / "models"), model="all-minilm-l6-v2")
    return BulkSettings(engine=es, db_retry_s=0), url


def test_a_decision_holds_the_table_the_manifest_and_the_identity(bulk: tuple[BulkSettings, str]) -> None:
    settings, url = bulk
    d = decide(settings.job(TableSpec(url, "docs", "id", "body", "embedding"), dimensions=128))
    assert (d.info.vector, d.manifest.id, d.eid.model_id, d.eid.dimensions) == (
        "embedding", "all-minilm-l6-v2-fp32", "all-minilm-l6-v2-fp32", 128)
    assert decide(settings.job(TableSpec(url, "docs", "id", "body", "embedding"))).eid.dimensions == 384


def test_more_dimensions_than_the_model_is_one_message(bulk: tuple[BulkSettings, str]) -> None:
    settings, url = bulk
    with pytest.raises(UnprocessableInput, match=r"^dimensions=512 is larger than the model's 384 dimensions$"):
        decide(settings.job(TableSpec(url, "docs", "id", "body", "embedding"), dimensions=512))


def test_a_model_that_is_not_built_says_how_to_build_it(bulk: tuple[BulkSettings, str], tmp_path: Path) -> None:
    settings, url = bulk
    job = settings.job(TableSpec(url, "docs", "id", "body", "embedding"),
                       engine=EngineSettings(model_dir=tmp_path / "empty", model="all-minilm-l6-v2", precision="int8"))
    with pytest.raises(SqlembedError, match=r"is not built in .*sqlembed model build --precision int8"):
        decide(job)


def test_a_missing_column_is_refused_before_anything_is_written(bulk: tuple[BulkSettings, str],
                                                                tmp_path: Path) -> None:
    settings, url = bulk
    with pytest.raises(InvalidInput, match="nope"):
        decide(settings.job(TableSpec(url, "docs", "id", "nope", "embedding")))
    assert (tmp_path / "docs.db").stat().st_size > 0


def test_a_spec_is_validated_where_it_is_built() -> None:
    with pytest.raises(InvalidInput, match="plain identifiers"):
        TableSpec("sqlite:///x.db", "docs; DROP TABLE docs", "id", "body", "embedding")
