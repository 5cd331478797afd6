"""The jupyter-mode notebook runs headless from top to bottom (so it cannot rot)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]
NOTEBOOK = Path(__file__).parents[2] / "samples" / "notebooks" / "01_bulk_and_search.ipynb"


def test_notebook_executes(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SQLEMBED_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("SQLEMBED_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("SQLEMBED_SPARK_MASTER", "local[2]")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    png = tmp_path / "products_pca.png"
    assert png.stat().st_size > 10_000
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "weather" in outputs and "rows (nothing changed)" in outputs
    # The notebook's own database, in the folder it was told to use: every product has its vector.
    (db,) = tmp_path.glob("*.db")
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows, embedded = conn.execute("SELECT count(*), count(embedding) FROM products").fetchone()
    assert rows > 0 and embedded == rows
