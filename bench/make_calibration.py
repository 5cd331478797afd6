#!/usr/bin/env python3
"""Regenerate ``python/sqlembed/engine/data/calibration.txt``, the texts static int8 is calibrated on.

``python bench/make_calibration.py [--check]`` (needs the model-minilm extra for the tokenizer).

Real English text that is never an evaluation text: the docstrings of standard-library modules
that are *not* in the benchmark corpus (``sqlembed.benchmark.corpus._MODULES``), split into
paragraphs like the corpus, and filtered against every corpus paragraph (``inspect.getdoc``
inherits docstrings across modules). 600 paragraphs of at least 80 characters plus 200 short
texts of 3-10 tokens (short texts are int8's worst case with mean pooling), shuffled with seed 0.
One text per line; a backslash or a newline inside a text is written as ``\\\\`` or ``\\n``.

What a module exposes depends on what else the process imported, so the file is generated in a
fresh interpreter that imports nothing heavy, and shipped: builds read the file, never regenerate it.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from sqlembed.benchmark.corpus import _MODULES, docstrings, paragraphs, split_paragraphs

OUT = Path(__file__).resolve().parents[1] / "python" / "sqlembed" / "engine" / "data" / "calibration.txt"
MODULES = (
    "abc", "ast", "base64", "bisect", "bz2", "calendar", "cmd", "codecs", "codeop", "configparser",
    "concurrent.futures", "copy", "copyreg", "dis", "doctest", "filecmp", "fileinput", "fnmatch",
    "ftplib", "getopt", "glob", "graphlib", "gzip", "hashlib", "hmac", "html.parser", "io", "locale",
    "lzma", "netrc", "numbers", "operator", "os", "pdb", "pkgutil", "platform", "plistlib", "poplib",
    "profile", "pstats", "pydoc", "quopri", "reprlib", "runpy", "sched", "secrets", "selectors",
    "shelve", "shlex", "socketserver", "stat", "struct", "symtable", "sysconfig", "tabnanny", "tokenize",
    "trace", "traceback", "types", "urllib.robotparser", "xml.etree.ElementTree", "xmlrpc.client",
    "zipimport", "mimetypes", "code", "compileall", "colorsys", "html",
)
N_LONG, N_SHORT, SEED = 600, 200, 0


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def calibration_texts() -> list[str]:
    from sqlembed.engine.build import default_source
    from sqlembed.engine.tokenizer import Tokenizer

    assert not set(MODULES) & set(_MODULES), "calibration modules overlap the evaluation corpus"
    evaluation = set(paragraphs())
    paras = [p for p in split_paragraphs(docstrings(MODULES)) if p not in evaluation]
    tok = Tokenizer(default_source() / "tokenizer.json", 256)
    lengths = [len(ids) - 2 for ids in tok.encode(paras).ids]  # without [CLS] and [SEP]
    long_texts = [p for p in paras if len(p) >= 80]
    short_texts = [p for p, n in zip(paras, lengths, strict=True) if 3 <= n <= 10]
    rng = random.Random(SEED)
    rng.shuffle(long_texts)
    rng.shuffle(short_texts)
    texts = long_texts[:N_LONG] + short_texts[:N_SHORT]
    rng.shuffle(texts)
    return texts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    body = "".join(escape(t) + "\n" for t in calibration_texts())
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == body
        print(f"{args.out}: {'identical' if same else 'DIFFERS'} (Python {sys.version.split()[0]})")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(body, encoding="utf-8")
    print(f"wrote {body.count(chr(10))} texts to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
