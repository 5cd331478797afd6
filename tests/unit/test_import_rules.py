"""architecture.md: engine/ never imports aiohttp, pyspark or a database driver; GPU libs lazily."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sqlembed.engine

FORBIDDEN = ("aiohttp", "pyspark", "pyodbc", "sqlalchemy", "sqlite3", "tensorrt", "torch", "transformers")


def test_engine_imports_without_server_spark_db_or_gpu_libraries() -> None:
    modules = [f"sqlembed.engine.{m.name}" for m in pkgutil.iter_modules(sqlembed.engine.__path__)]
    assert "sqlembed.engine.batcher" in modules and "sqlembed.engine.registry" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine pulled in: {out.stdout.strip()}"
