from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from sqlembed.benchmark.corpus import paragraphs

pytest.importorskip("pyspark", reason="needs the spark extra (pyspark)")



def sentences(n: int) -> list[str]:
    """Short real sentences (the corpus split at full stops): many rows, quick to embed."""
    out: dict[str, None] = {}
    for p in paragraphs(min_chars=20):
        for s in re.split(r"(?<=\.)\s+", p):
            if len(s) > 20:
                out[s] = None
                if len(out) == n:
                    return list(out)
    raise AssertionError("corpus too small")


def make_table(path: Path, texts: list[str | None], name: str = "docs") -> str:
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, body TEXT, embedding TEXT)")
    conn.executemany(f"INSERT INTO {name} (id, body) VALUES (?, ?)", list(enumerate(texts, start=1)))
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


