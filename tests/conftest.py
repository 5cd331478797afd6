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
def capture_logs_for_leak_scan() -> Iterator[None]:
    """Every in-process log line, at every level, goes to the leak scan (tests/zz_leaks)."""
    import logging

    handler = leaks.CaptureHandler(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(old_level or logging.WARNING, logging.INFO))
    yield
    root.removeHandler(handler)
    root.setLevel(old_level)


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
