from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sqlembed.settings import Settings
from tests.support import leaks
from tests.support.server import ServerThread, running


@pytest.fixture(scope="session", autouse=True)
def no_leak_and_every_response_conforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every in-process log line, at every level, is captured; when the session (or an xdist
    worker's share of it) ends, no secret the suite used may appear in a log line, an error body
    or a *.log file, and every JSON response a test server sent must match its own OpenAPI
    document (tests/support/server.py). A failure here is reported as an error at the teardown
    of the session's last test."""
    import logging

    from tests.support.server import CONFORMANCE

    handler = leaks.CaptureHandler(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(old_level or logging.WARNING, logging.INFO))
    yield
    root.removeHandler(handler)
    root.setLevel(old_level)
    problems = leaks.scan(tmp_path_factory.getbasetemp()) + CONFORMANCE
    assert not problems, problems[:10]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model in fp32 and static int8, and bf16 where the CPU has native bf16, built
    once per session with the real exporter (int8 and bf16 start from the fp32 export).

    Set SQLEMBED_TEST_MODEL_DIR to reuse a store between runs while developing; a model built
    by an older recipe (e.g. dynamic int8) is rebuilt.
    """
    from sqlembed.engine.build import build_model, is_current
    from sqlembed.engine.config import model_id
    from sqlembed.engine.cpu import read_cpu_caps
    from sqlembed.engine.store import ModelStore

    root = Path(os.environ.get("SQLEMBED_TEST_MODEL_DIR") or tmp_path_factory.mktemp("models"))
    store = ModelStore(root)
    precisions = ["fp32", "int8"] + (["bf16"] if read_cpu_caps().bf16 else [])
    for precision in precisions:
        mid = model_id("all-minilm-l6-v2", precision)
        stale = store.exists(mid) and not is_current(store.get(mid))
        build_model(store, precision=precision, force=stale)
    return root


@pytest.fixture(scope="session")
def base_settings(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(model_dir=model_dir, api_keys="", strict_model=False, threads=2, databases="{}",
                    state_dir=tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="session")
def fake_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings over the fake model (tests/support/fake.py): serve it with ``backend=FakeBackend()``."""
    from tests.support.fake import write_fake_model

    return Settings(model_dir=write_fake_model(tmp_path_factory.mktemp("fake-models")), api_keys="",
                    strict_model=False, threads=2, databases="{}", state_dir=tmp_path_factory.mktemp("fake-state"))


@pytest.fixture(scope="session")
def fake_server(fake_settings: Settings) -> Iterator[ServerThread]:
    """The service over the fake engine: HTTP, protocols, batching, admission, errors, metrics."""
    from tests.support.fake import FakeBackend

    with running(fake_settings, backend=FakeBackend()) as srv:
        yield srv


@pytest.fixture(scope="session")
def fake_url(fake_server: ServerThread) -> str:
    return fake_server.url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs the built reference model (the ``model_dir`` fixture, directly or through
    another fixture) is marked ``model``: ``make test-fast`` deselects them and builds none."""
    for item in items:
        if "model_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session")
def server(base_settings: Settings) -> Iterator[ServerThread]:
    with running(base_settings) as srv:
        yield srv


@pytest.fixture(scope="session")
def base_url(server: ServerThread) -> str:
    return server.url


@pytest.fixture(scope="session")
def spark_local(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local[2] SparkSession for every test that needs Spark in-process (spark, hardening)."""
    pytest.importorskip("pyspark", reason="needs the spark extra (pyspark)")
    # Executor Python workers inherit the environment of the process that starts the JVM: they load
    # the test-only fault plugin (tests/support/faultplugin), armed by a plan file a test writes.
    plugin = str(Path(__file__).parent / "support" / "faultplugin")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (plugin, os.environ.get("PYTHONPATH")) if p)
    os.environ["SQLEMBED_TEST_FAULT_PLAN"] = str(tmp_path_factory.mktemp("faults") / "plan.json")
    from sqlembed.spark.session import build_session, spark_conf

    spark = build_session(spark_conf("local[2]", gpu=False))
    yield spark
    spark.stop()
