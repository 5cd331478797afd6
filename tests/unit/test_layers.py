"""docs/architecture.md's layer table holds: no import cycles, no arrow to the same or a higher
layer (function-level, TYPE_CHECKING and package ``__init__`` arrows included), and ``engine/``
runs without the server's, Spark's, a database's or a GPU's libraries."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlembed.engine
from tests.support import imports

FORBIDDEN = ("aiohttp", "pyspark", "pyodbc", "mssql_python", "sqlalchemy", "sqlite3", "tensorrt", "torch",
             "transformers", "pydantic_settings")


def test_the_package_has_no_import_cycle() -> None:
    assert imports.cycles(imports.graph()) == []


def test_no_module_imports_its_own_or_a_higher_layer() -> None:
    assert imports.layers().upward(imports.graph()) == []


def test_every_module_is_in_a_layer_and_every_layer_is_used() -> None:
    table, mods = imports.layers(), imports.modules()
    units = {table.unit(m) for m in mods}  # raises for a module in no layer
    assert set(table.rank) == units, f"layers naming nothing: {set(table.rank) - units}"


def test_only_main_imports_the_cli() -> None:
    importers = sorted(m for m, ts in imports.graph().items() if "sqlembed.cli" in ts)
    assert importers == ["sqlembed.__main__"]


def test_the_checker_sees_what_it_must(tmp_path: Path) -> None:
    """A cycle hidden in a function, an arrow through a package __init__, an upward arrow."""
    pkg = tmp_path / "sqlembed"
    for rel, body in {
        "__init__.py": "",
        "low/__init__.py": "from sqlembed.low import a\n",
        "low/a.py": "def f():\n    from sqlembed.high import b\n",
        "high/__init__.py": "",
        "high/b.py": "import sqlembed.low.a\n",
        "high/c.py": "from sqlembed.low import a\n",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(textwrap.dedent(body))
    edges = imports.graph(imports.modules(pkg))
    assert edges["sqlembed.high.b"] == {"sqlembed.low", "sqlembed.low.a"}  # low/__init__ runs too
    assert edges["sqlembed.low.a"] == {"sqlembed.high", "sqlembed.high.b"}
    assert imports.cycles(edges) == [["sqlembed.high.b", "sqlembed.low", "sqlembed.low.a"]]
    doc = tmp_path / "arch.md"
    doc.write_text("## Layers\n| rank | units |\n|---|---|\n| 0 | `sqlembed` |\n| 1 | `sqlembed.low` |\n"
                   "| 2 | `sqlembed.high` |\n## Next\n")
    assert imports.layers(doc).upward(edges) == [
        "sqlembed.low.a (layer 1) imports sqlembed.high (layer 2)",
        "sqlembed.low.a (layer 1) imports sqlembed.high.b (layer 2)"]


def test_engine_imports_without_server_spark_db_settings_or_gpu_libraries() -> None:
    mods = [f"sqlembed.engine.{m.name}" for m in pkgutil.iter_modules(sqlembed.engine.__path__)]
    assert "sqlembed.engine.batcher" in mods and "sqlembed.engine.registry" in mods
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine pulled in: {out.stdout.strip()}"
