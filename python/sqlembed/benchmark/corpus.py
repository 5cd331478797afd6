"""A fixed corpus of real English paragraphs: the docstrings of the Python standard library.

Real prose with a realistic length spread, available offline on every machine, identical for a
given Python version, so benchmark runs compare like with like.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import re
import warnings
from collections.abc import Iterator

_MODULES = (
    "argparse", "asyncio", "collections", "contextlib", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "email", "enum", "fractions", "functools", "gettext", "heapq", "http.client", "http.server",
    "imaplib", "inspect", "ipaddress", "itertools", "json", "logging", "mailbox", "multiprocessing",
    "optparse", "pathlib", "pickle", "pprint", "queue", "random", "re", "shutil", "smtplib", "socket",
    "sqlite3", "ssl", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
    "timeit", "tkinter", "typing", "unittest", "urllib.parse", "urllib.request", "uuid", "warnings",
    "wave", "weakref", "xml.dom.minidom", "zipfile", "zoneinfo",
)


def docstrings(modules: tuple[str, ...] = _MODULES) -> list[str]:
    """Every docstring of ``modules``: each module, its classes and functions, their methods."""
    out: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in modules:
            try:
                mod = importlib.import_module(name)
            except ImportError:
                continue
            objs = [mod] + [v for _, v in sorted(vars(mod).items()) if inspect.isclass(v) or inspect.isfunction(v)]
            for obj in objs:
                doc = inspect.getdoc(obj)
                if doc:
                    out.append(doc)
                if inspect.isclass(obj):
                    for _, meth in sorted(vars(obj).items()):
                        mdoc = inspect.getdoc(meth) if inspect.isfunction(meth) else None
                        if mdoc:
                            out.append(mdoc)
    return out


def split_paragraphs(docs: list[str], *, min_chars: int = 0) -> Iterator[str]:
    """Distinct prose paragraphs of ``docs`` in order (code blocks and tables skipped)."""
    seen: set[str] = set()
    for doc in docs:
        for para in re.split(r"\n\s*\n", doc):
            text = " ".join(line.strip() for line in para.splitlines()).strip()
            if not text or len(text) < min_chars or text in seen or text.startswith((">>>", "|", "+-", "..")):
                continue
            seen.add(text)
            yield text


def paragraphs(n: int | None = None, *, min_chars: int = 80) -> list[str]:
    """The benchmark corpus: distinct paragraphs of at least ``min_chars`` in a stable order."""
    return list(itertools.islice(split_paragraphs(docstrings(), min_chars=min_chars), n))
