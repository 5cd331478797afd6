from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sqlembed.settings import Settings
from tests.support.server import ServerThread, running


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both precisions of the default model, built once per session with the real exporter.

    Set SQLEMBED_TEST_MODEL_DIR to reuse a store between runs while developing.
    """
    from sqlembed.engine.build import build_model
    from sqlembed.engine.store import ModelStore

    root = Path(os.environ.get("SQLEMBED_TEST_MODEL_DIR") or tmp_path_factory.mktemp("models"))
    store = ModelStore(root)
    for precision in ("fp32", "int8"):
        build_model(store, precision=precision)
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
