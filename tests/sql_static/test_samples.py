"""samples/sql: well-formed batches that call only procedures and parameters sql/ defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqlembed.db.sqlfiles import load, mask, split_batches

SAMPLES = sorted((Path(__file__).parents[2] / "samples" / "sql").glob("*.sql"))


def _procedures() -> dict[str, set[str]]:
    procs: dict[str, set[str]] = {}
    for f in load():
        code = mask(f.text)
        for m in re.finditer(r"CREATE OR ALTER PROCEDURE\s+sqlembed\.(\w+)(.*?)\bAS\b\s*\n\s*BEGIN", code, re.S | re.I):
            procs[m.group(1)] = set(re.findall(r"@(\w+)", m.group(2)))
    return procs


def test_there_is_a_quickstart() -> None:
    assert [p.name for p in SAMPLES][:1] == ["01_quickstart.sql"]


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_calls_existing_procedures(path: Path) -> None:
    procs = _procedures()
    assert {"embed_rows", "search", "self_test", "embed_text", "create_vector_index"} <= set(procs)
    text = path.read_text("utf-8")
    batches = split_batches(text)
    assert len(batches) >= 5
    for b in batches:
        code = mask(b.text)
        assert code.count("(") == code.count(")"), f"{path.name}:{b.line}"
        for m in re.finditer(r"EXEC\s+sqlembed\.(\w+)([^;]*?)(?:;|$)", code, re.S | re.I):
            name, args = m.group(1), m.group(2)
            assert name in procs, f"{path.name}:{b.line}: sqlembed.{name} does not exist"
            for param in re.findall(r"@(\w+)\s*=", args):
                assert param in procs[name], f"{path.name}:{b.line}: sqlembed.{name} has no @{param}"
