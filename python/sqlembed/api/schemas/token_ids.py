"""OpenAI-style token-id input: ids of OpenAI's ``cl100k_base`` encoding, decoded back to text.

The OpenAI embeddings API accepts token-id arrays, and LangChain's ``OpenAIEmbeddings`` sends them
by default (it tokenizes with tiktoken's ``cl100k_base``, the encoding of OpenAI's embedding models).
Read as this model's own vocabulary those ids would give silently wrong vectors; ``cl100k_base``
decodes losslessly, so the text is recovered and embedded with the model's own tokenizer: the same
vector as sending the text.

The encoding table comes from the installed ``bpe-openai`` package (MIT, the table compiled in):
tiktoken itself downloads its table at first use, which an offline server cannot do.
"""

from __future__ import annotations

import functools
from typing import Any

ENCODING = "cl100k_base"
MERGEABLE_IDS = 100_256
"""cl100k_base's ordinary tokens are ids 0..100255; above are special tokens (<|endoftext|>...),
which tiktoken itself refuses to encode from text by default."""
LANGCHAIN_HINT = "send text instead (LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))"


class Undecodable(ValueError):
    """Token ids that are not text in cl100k_base."""


@functools.cache
def _encoding() -> Any:
    try:
        import bpe_openai
    except ImportError as exc:  # the server extra installs it; a trimmed install may not have it
        raise Undecodable(f"this server cannot read token ids (the bpe-openai package is not installed); "
                          f"{LANGCHAIN_HINT}") from exc
    return bpe_openai.get_encoding(ENCODING)


def is_token_ids(value: list[Any]) -> bool:
    """A list of ints (one text) or a list of non-empty lists of ints (several texts)."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    return (all(is_int(v) for v in value)
            or all(isinstance(v, list) and v and all(is_int(t) for t in v) for v in value))


def decode(ids: list[int], where: str) -> str:
    """The text ``ids`` encode, or :class:`Undecodable` naming the first bad id."""
    for i, t in enumerate(ids):
        if not 0 <= t < MERGEABLE_IDS:
            raise Undecodable(f"'{where}[{i}]' = {t} is not an ordinary {ENCODING} token id "
                              f"(0..{MERGEABLE_IDS - 1}); token ids are read as OpenAI's {ENCODING}; {LANGCHAIN_HINT}")
    text = _utf8(bytes(_encoding().decode_bytes(ids)))
    if text is None:
        raise Undecodable(f"'{where}': these {ENCODING} token ids do not decode to UTF-8 text; {LANGCHAIN_HINT}")
    if not text:
        raise Undecodable(f"'{where}': these {ENCODING} token ids hold no whole character; {LANGCHAIN_HINT}")
    return text


def _utf8(data: bytes) -> str | None:
    """Strict UTF-8, except for a character cut at either end: LangChain splits a text longer than
    its context into token windows, and a window may start or end inside a multi-byte character.
    Those partial bytes are dropped; invalid bytes anywhere else are an error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    start = 0
    while start < min(3, len(data)) and 0x80 <= data[start] < 0xC0:  # continuation bytes of a cut character
        start += 1
    end = len(data)
    # A lead byte whose sequence runs past the end: drop it and what follows it.
    for back in range(1, min(4, end - start) + 1):
        b = data[end - back]
        if b >= 0xC0:
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            if need > back:
                end -= back
            break
        if b < 0x80:
            break
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
