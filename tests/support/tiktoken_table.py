"""tiktoken's cl100k_base table, written from the installed ``bpe-openai`` package.

tiktoken downloads its tables at first use, which cannot happen here (no internet but the package
registries). The table is rebuilt from bpe-openai's ranks in tiktoken's own file format and put in
tiktoken's cache, where tiktoken checks it against the SHA-256 it expects: a table that differed
in one byte would be refused, so the client in the tests tokenizes exactly as it would online.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def cl100k_file() -> bytes:
    import bpe_openai

    enc = bpe_openai.get_encoding("cl100k_base")
    lines = [base64.b64encode(bytes(enc.decode_single_token_bytes(rank))) + b" " + str(rank).encode()
             for rank in range(100_256)]
    return b"\n".join(lines) + b"\n"


def seed_cache(cache_dir: Path) -> Path:
    """Write the table where tiktoken looks (``TIKTOKEN_CACHE_DIR``); returns the file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / hashlib.sha1(CL100K_URL.encode()).hexdigest()  # tiktoken's cache key
    path.write_bytes(cl100k_file())
    return path
