"""Fast (Rust) tokenizer with truncation at the model's max length."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sqlembed.errors import InvalidInput

TokenIds = npt.NDArray[np.int64]


class Tokenizer:
    def __init__(self, tokenizer_json: Path, max_length: int) -> None:
        from tokenizers import Tokenizer as HfTokenizer

        tok = HfTokenizer.from_file(str(tokenizer_json))
        tok.no_padding()
        # The tokenizer.json of sentence-transformers models often carries a shorter
        # truncation (128) than the model's max_seq_length (256): the model config wins.
        tok.enable_truncation(max_length=max_length)
        self._tok = tok
        self.max_length = max_length

    def encode(self, texts: Sequence[str], *, truncate: bool = True) -> list[TokenIds]:
        """Token ids per text. With ``truncate=False`` an over-long text is an error, as in Ollama."""
        encodings = self._tok.encode_batch(list(texts))
        out: list[TokenIds] = []
        for i, enc in enumerate(encodings):
            if not truncate and enc.overflowing:
                raise InvalidInput(
                    f"input[{i}] exceeds the model's context length of {self.max_length} tokens "
                    "and truncate is false",
                    param="input",
                )
            out.append(np.asarray(enc.ids, dtype=np.int64))
        return out
