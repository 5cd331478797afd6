"""Token-aware chunking (engine/chunking.py): budgets, boundaries, overlap, offsets, determinism.

The pure function is tested with hand-made token spans (one token per word) so every expectation can
be worked out by hand; the model's own tokenizer is then checked for the property a user relies on:
re-tokenizing any chunk never exceeds the budget, and the chunks cover the whole text.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from sqlembed.engine.chunking import Chunk, chunk_spans


def words(text: str) -> list[tuple[int, int]]:
    """One token per run of non-space characters, as a stand-in tokenizer."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def test_a_short_text_is_one_chunk_covering_it() -> None:
    text = "one two three"
    assert chunk_spans(text, words(text), 8) == [Chunk(0, 0, len(text), text)]


def test_chunks_never_exceed_the_budget_and_cover_every_token() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    spans = words(text)
    chunks = chunk_spans(text, spans, 16)
    assert [c.no for c in chunks] == list(range(len(chunks)))
    covered = []
    for c in chunks:
        inside = [s for s in spans if c.offset <= s[0] and s[1] <= c.offset + c.length]
        assert 1 <= len(inside) <= 16
        assert text[c.offset: c.offset + c.length] == c.text
        covered.extend(inside)
    assert covered == spans  # no overlap asked: every token exactly once, in order


def test_a_paragraph_break_is_preferred_to_a_sentence_end_and_a_sentence_end_to_a_space() -> None:
    para = "alpha beta gamma delta.\n\nepsilon zeta eta theta iota kappa"
    # Budget 8, floor 4: the paragraph break after word 4 wins over the space after word 8.
    cuts = chunk_spans(para, words(para), 8)
    assert cuts[0].text == "alpha beta gamma delta."
    later_sentence = "a b c d\n\ne f. g h i j k l"
    # A sentence ends later in the window (after "f."), but the paragraph break is the better cut.
    assert chunk_spans(later_sentence, words(later_sentence), 8)[0].text == "a b c d"
    sentence = "alpha beta gamma. delta epsilon zeta eta theta iota kappa"
    cuts = chunk_spans(sentence, words(sentence), 6)
    # Budget 6, floor 3: the sentence ends after word 3, so the cut is there, not at word 6.
    assert cuts[0].text == "alpha beta gamma."
    plain = "a b c d e f g h i j"
    assert chunk_spans(plain, words(plain), 4)[0].text == "a b c d"


def test_no_tiny_chunks_a_boundary_in_the_first_half_is_ignored() -> None:
    text = "Hi. " + " ".join(f"w{i}" for i in range(30))
    first = chunk_spans(text, words(text), 10)[0]
    assert first.text != "Hi." and len(words(first.text)) == 10


def test_overlap_repeats_the_tail_of_the_previous_chunk_from_a_word_start() -> None:
    text = " ".join(f"w{i}" for i in range(40))
    chunks = chunk_spans(text, words(text), 10, overlap=3)
    for a, b in itertools.pairwise(chunks):
        tail = a.text.split()[-3:]
        assert b.text.split()[:3] == tail
    assert chunks[-1].text.endswith("w39")


def test_word_pieces_are_never_split_at_the_overlap_start() -> None:
    # Tokens glued to each other ("un", "##believ", "##able") have no gap: never start a chunk inside.
    text = "aa unbelievable bb cc dd ee ff gg hh"
    spans = [(0, 2), (3, 5), (5, 11), (11, 15), (16, 18), (19, 21), (22, 24), (25, 27), (28, 30), (31, 33), (34, 36)]
    chunks = chunk_spans(text, spans, 5, overlap=2)
    for c in chunks:
        assert c.offset == 0 or text[c.offset - 1] == " "


def test_a_run_without_spaces_is_cut_where_the_budget_ends() -> None:
    text = "x" * 50
    spans = [(i, i + 5) for i in range(0, 50, 5)]
    chunks = chunk_spans(text, spans, 4)
    assert [c.length for c in chunks] == [20, 20, 10]


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_spans("a b", words("a b"), 0)
    with pytest.raises(ValueError):
        chunk_spans("a b", words("a b"), 4, overlap=4)


def test_blank_text_has_no_chunks() -> None:
    assert chunk_spans("   ", [], 8) == []


def test_with_the_models_tokenizer_every_chunk_fits_and_the_text_is_covered(model_dir: Path) -> None:
    from sqlembed.engine.store import ModelStore
    from sqlembed.engine.tokenizer import Tokenizer

    store = ModelStore(model_dir)
    tok = Tokenizer(store.path("all-minilm-l6-v2-fp32") / "tokenizer.json", 256)
    import inspect

    from sqlembed.engine import chunking

    doc = inspect.getdoc(chunking) or ""
    text = (doc + "\n\n") * 6 + "Überlänge: naïve café résumé — 東京 😀 done."
    a = tok.chunks(text, 40, 8)
    b = tok.chunks(text, 40, 8)
    assert a == b and len(a) > 5  # deterministic
    for c in a:
        assert text[c.offset: c.offset + c.length] == c.text
        assert len(tok.token_offsets(c.text)) <= 40
    assert a[0].offset == 0 and a[-1].offset + a[-1].length == len(text.rstrip())
    starts = [c.offset for c in a]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
