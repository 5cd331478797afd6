"""The README and docs/ name only paths that exist and extras that pyproject.toml defines."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("python", "sql", "docs", "tests", "bench", "containers", "infra", "samples", "scripts", ".github", ".ci")
# A repository path: starts at a top-level folder, made of path characters; ends before punctuation.
PATH = re.compile(r"(?<![\w./$~-])((?:" + "|".join(re.escape(t) for t in TOP) + r")/[\w./-]*[\w/])")
EXTRA = re.compile(r"pip install (?:-e )?['\"]?\.\[([\w,-]+)\]")


# Folders the tools generate (make stack-up writes containers/.stack/): ignored by git, so named in
# the docs without existing in a clone.
GENERATED = tuple(line.strip() for line in (ROOT / ".gitignore").read_text("utf-8").splitlines()
                  if line.strip().endswith("/") and "/" in line.strip()[:-1])


def _named(doc: Path) -> list[str]:
    return [m.group(1) for m in PATH.finditer(doc.read_text("utf-8"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_named_exists(doc: Path) -> None:
    named = _named(doc)
    missing = sorted({p for p in named if not (ROOT / p.rstrip("/")).exists() and not p.startswith(GENERATED)})
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def test_the_scan_finds_paths() -> None:
    # A scan that matched nothing would pass the test above for any text.
    readme = _named(ROOT / "README.md")
    assert "sql/README.md" in readme and len(readme) >= 10
    assert not (ROOT / "python/sqlembed/no-such-file.py").exists()
    assert _named_text("see `python/sqlembed/no-such-file.py`.") == ["python/sqlembed/no-such-file.py"]


def _named_text(text: str) -> list[str]:
    return [m.group(1) for m in PATH.finditer(text)]


def test_every_pip_extra_exists() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["optional-dependencies"])
    named = {e for doc in [*DOCS, ROOT / "sql" / "README.md", ROOT / "containers" / "README.md"]
             if doc.exists() for m in EXTRA.finditer(doc.read_text("utf-8")) for e in m.group(1).split(",")}
    assert named, "no pip install -e '.[extra]' found: the pattern is wrong"
    assert named <= extras, f"unknown extras: {sorted(named - extras)} (pyproject.toml has {sorted(extras)})"
