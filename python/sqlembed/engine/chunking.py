"""Token-aware chunking: a long text as chunks of at most N tokens of the model's own tokenizer, with
an overlap, cut where the text allows: at a paragraph break, else after a sentence, else between
words, else (a run of text with no space) wherever the budget ends.

Pure: ``chunk_spans`` takes the text and its token offsets (what the tokenizer says), so it is
deterministic and testable without a model. Offsets and lengths are in characters of the original
text (0-based here; the databases store them 1-based, as AI_GENERATE_CHUNKS does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_SENTENCE = re.compile(r"[.!?][\"')\]]*\s")


@dataclass(frozen=True)
class Chunk:
    no: int
    """0-based order within the text."""
    offset: int
    """Character offset of the chunk in the text (0-based)."""
    length: int
    text: str


def _boundary_kinds(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """For each token i, how good a place cutting before it is: 3 paragraph, 2 sentence, 1 word, 0 none."""
    paragraphs = {m.end() for m in _PARAGRAPH.finditer(text)}
    sentences = {m.end() for m in _SENTENCE.finditer(text)}
    kinds = [0] * len(offsets)
    for i in range(1, len(offsets)):
        start, prev_end = offsets[i][0], offsets[i - 1][1]
        gap = text[prev_end:start]
        if not gap:
            continue  # inside a word (a word piece or punctuation glued to it)
        if any(prev_end < p <= start for p in paragraphs) or "\n\n" in gap:
            kinds[i] = 3
        elif any(prev_end < s <= start + 1 for s in sentences):
            kinds[i] = 2
        else:
            kinds[i] = 1
    return kinds


def chunk_spans(text: str, offsets: Sequence[tuple[int, int]], max_tokens: int, overlap: int = 0) -> list[Chunk]:
    """Chunks covering ``text``; ``offsets`` are the (start, end) character spans of its tokens."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    if not 0 <= overlap < max_tokens:
        raise ValueError("overlap must be >= 0 and smaller than max_tokens")
    n = len(offsets)
    if n == 0:
        return [Chunk(0, 0, len(text), text)] if text.strip() else []
    kinds = _boundary_kinds(text, offsets)
    chunks: list[Chunk] = []
    start = 0
    while True:
        end = min(start + max_tokens, n)
        if end < n:
            # The best boundary in the second half of the window: never a tiny chunk.
            floor = start + max(1, max_tokens // 2)
            for kind in (3, 2, 1):
                cut = next((i for i in range(end, floor - 1, -1) if i < n and kinds[i] >= kind), None)
                if cut is not None and cut > start:
                    end = cut
                    break
        lo, hi = offsets[start][0], offsets[end - 1][1]
        chunks.append(Chunk(len(chunks), lo, hi - lo, text[lo:hi]))
        if end >= n:
            return chunks
        nxt = max(end - overlap, start + 1)
        if overlap:
            # Start the overlap at a word, not in the middle of one.
            while nxt < end and kinds[nxt] == 0:
                nxt += 1
        start = nxt
