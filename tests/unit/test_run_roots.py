"""sqlembed/run: the composition roots build what their process needs from Settings, and only that."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from sqlembed.errors import SqlembedError
from sqlembed.fronts.front import PROXIED
from sqlembed.run.bulk import bulk_settings
from sqlembed.run.front import front_app
from sqlembed.settings import Settings


def test_bulk_settings_come_from_the_settings(tmp_path: Path) -> None:
    s = Settings(model_dir=tmp_path, model="m", precision="int8", threads=3, task_threads=5, job_batch_rows=7,
                 db_retry_s=3.5, vector_type="float16", dispatch_host="driver.local", progress_port=9123)
    b = bulk_settings(s)
    assert (b.engine.model_dir, b.engine.model, b.engine.precision, b.engine.threads) == (tmp_path, "m", "int8", 5)
    assert (b.batch_rows, b.db_retry_s, b.vector_type, b.progress_host, b.progress_port) == (
        7, 3.5, "float16", "driver.local", 9123)
    job = b.job(spec=None, batch_rows=None, dimensions=64)  # type: ignore[arg-type]  # None keeps the default
    assert (job.batch_rows, job.dimensions) == (7, 64)


def test_a_front_answers_the_stateful_routes_through_the_host(tmp_path: Path) -> None:
    app = front_app(Settings(model_dir=tmp_path, api_keys=""), tmp_path, b"k" * 32)
    by_path: dict[str, set[str]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter", "")
        by_path.setdefault(path, set()).add(getattr(route.handler, "__qualname__", ""))
    assert set(by_path) >= PROXIED
    for path, handlers in by_path.items():
        proxied = {h for h in handlers if h == "HostProxy.handle"}
        assert bool(proxied) == (path in PROXIED), (path, handlers)


@pytest.mark.parametrize(("choice", "expected"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_the_server_event_loop_is_the_one_chosen(tmp_path: Path, choice: str, expected: str) -> None:
    from sqlembed.run.loop import describe, new_event_loop

    pytest.importorskip("uvloop", reason="uvloop is part of the server extra except on Windows")
    loop = new_event_loop(Settings(model_dir=tmp_path, event_loop=choice))
    try:
        assert describe(loop).split()[0] == expected
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()


def test_uvloop_asked_for_and_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlembed.run import loop as loopmod

    # None in sys.modules: `import uvloop` raises ImportError and find_spec answers None, as
    # where it is not installed.
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(SqlembedError, match="SQLEMBED_EVENT_LOOP=uvloop but uvloop is not installed"):
        loopmod.new_event_loop(Settings(model_dir=tmp_path, event_loop="uvloop"))
    auto = loopmod.new_event_loop(Settings(model_dir=tmp_path, event_loop="auto"))  # falls back, no error
    try:
        assert loopmod.describe(auto) == "asyncio"
    finally:
        auto.close()
