"""The package's import graph, read from the source (every import statement, function-level and
TYPE_CHECKING ones included), and the layer table of docs/architecture.md.

Why our own reader rather than import-linter or grimp: the rules live in a Markdown table that
the architecture doc shows to people, and the whole reader is the 60 lines below (ast only).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "sqlembed"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def graph(mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """module -> the package modules it imports. ``import a.b.c`` also runs ``a`` and ``a.b``
    (their ``__init__``): those arrows count, except into the importer's own ancestors (already
    running when it is imported)."""
    mods = modules() if mods is None else mods
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own = set(_ancestors(name))
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                # `from pkg import mod` imports the module; `from mod import name` the module only
                targets += [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        for t in targets:
            if t.split(".")[0] != "sqlembed":
                continue
            while t not in mods and "." in t:
                t = t.rpartition(".")[0]
            for hit in [*_ancestors(t), t]:
                if hit in mods and hit != name and hit not in own:
                    edges[name].add(hit)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


@dataclass(frozen=True)
class Layers:
    rank: dict[str, int]
    """unit (a module or package name) -> its rank; a module belongs to its longest unit."""

    def unit(self, module: str) -> str:
        best = ""
        for u in self.rank:
            if (module == u or module.startswith(u + ".")) and len(u) > len(best) and u != "sqlembed":
                best = u
        if not best and module == "sqlembed":
            best = "sqlembed"
        if not best:
            raise KeyError(f"{module} is in no layer of docs/architecture.md")
        return best

    def upward(self, edges: dict[str, set[str]]) -> list[str]:
        """Arrows to a unit of the same or a higher rank (other than the module's own unit)."""
        bad = []
        for m, targets in sorted(edges.items()):
            mu = self.unit(m)
            for t in sorted(targets):
                tu = self.unit(t)
                if tu != mu and self.rank[tu] >= self.rank[mu]:
                    bad.append(f"{m} (layer {self.rank[mu]}) imports {t} (layer {self.rank[tu]})")
        return bad


def layers(doc: Path = ARCHITECTURE) -> Layers:
    """The table under '## Layers': ``| rank | `unit`, `unit` | ... |`` rows."""
    text = doc.read_text(encoding="utf-8")
    section = re.split(r"(?m)^## Layers", text, maxsplit=1)[1].split("\n## ", 1)[0]
    rank: dict[str, int] = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if m:
            for unit in re.findall(r"`([\w.]+)`", m.group(2)):
                rank[unit] = int(m.group(1))
    return Layers(rank)
