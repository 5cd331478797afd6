"""Fast (Rust) tokenizer: prompts, truncation at the model's max length from either end, and how
many tokens truncation dropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sqlembed.engine.chunking import Chunk, chunk_spans
from sqlembed.engine.config import Direction
from sqlembed.errors import InvalidInput

TokenIds = npt.NDArray[np.int64]


@dataclass
class Encoded:
    ids: list[TokenIds]
    dropped: int = 0
    """Tokens cut by truncation over all texts (the prompt counts against the length, as in
    sentence-transformers, and is never what is cut)."""
    truncated: int = 0
    """Texts that were cut."""


class Tokenizer:
    def __init__(self, tokenizer_json: Path, max_length: int) -> None:
        from tokenizers import Tokenizer as HfTokenizer

        tok = HfTokenizer.from_file(str(tokenizer_json))
        tok.no_padding()
        # The tokenizer.json of sentence-transformers models often carries a shorter
        # truncation (128) than the model's max_seq_length (256): the model config wins.
        tok.enable_truncation(max_length=max_length)
        self._tok = tok
        self._whole = HfTokenizer.from_file(str(tokenizer_json))
        self._whole.no_padding()
        self._whole.no_truncation()
        self.max_length = max_length

    def encode(self, texts: Sequence[str], *, truncate: bool = True, prompt: str | None = None,
               direction: Direction = "right") -> Encoded:
        """Token ids per text, the prompt (if any) prepended to the text as sentence-transformers does.

        With ``truncate=False`` an over-long text is an error, as in Ollama. ``right`` keeps the
        start of the text, ``left`` keeps its end (the prompt and the special tokens stay).
        """
        full = [prompt + t for t in texts] if prompt else list(texts)
        # One text: encode, not encode_batch, which hands the work to the Rust thread pool and
        # back (16% of a single-text request's CPU, py-spy).
        encodings = [self._tok.encode(full[0])] if len(full) == 1 else self._tok.encode_batch(full)
        out = Encoded([])
        for i, enc in enumerate(encodings):
            if enc.overflowing:
                if not truncate:
                    raise InvalidInput(
                        f"input[{i}] exceeds the model's context length of {self.max_length} tokens "
                        "and truncate is false",
                        param="input",
                    )
                whole = self._whole.encode(full[i]).ids
                out.dropped += len(whole) - len(enc.ids)
                out.truncated += 1
                if direction == "left":
                    out.ids.append(np.asarray(self._keep_end(whole, prompt), dtype=np.int64))
                    continue
            out.ids.append(np.asarray(enc.ids, dtype=np.int64))
        return out

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's tokens, no special tokens, no truncation."""
        return list(self._whole.encode(text, add_special_tokens=False).offsets)

    def chunks(self, text: str, max_tokens: int, overlap: int = 0) -> list[Chunk]:
        return chunk_spans(text, self.token_offsets(text), max_tokens, overlap)

    def prompt_tokens(self, prompt: str | None) -> int:
        return len(self._whole.encode(prompt, add_special_tokens=False).ids) if prompt else 0

    def _keep_end(self, whole: list[int], prompt: str | None) -> list[int]:
        """[CLS] + prompt + the last tokens of the text + [SEP], ``max_length`` in all."""
        head = 1 + self.prompt_tokens(prompt)
        tail = self.max_length - head - 1
        return whole[:head] + whole[len(whole) - 1 - tail: len(whole) - 1] + whole[-1:]
