"""OpenAI token-id input (schemas/token_ids.py): cl100k_base ids back to their text."""

from __future__ import annotations

import hashlib

import bpe_openai
import pytest

from sqlembed.api.schemas.common import Limits, parse
from sqlembed.api.schemas.ollama import EmbedRequest
from sqlembed.api.schemas.openai import EmbeddingsRequest
from sqlembed.api.schemas.token_ids import LANGCHAIN_HINT, Undecodable, decode
from sqlembed.errors import InvalidInput, UnprocessableInput
from tests.support.tiktoken_table import cl100k_file

ENC = bpe_openai.get_encoding("cl100k_base")
TEXTS = ["SQL Server 2025 calls sqlembed", "ünïcödé, 日本語のテキスト, emoji 🧪🔬 and tabs\tand\nlines",
         "  leading and trailing spaces  ", "Ωμέγα"]


def test_the_table_is_tiktokens_own() -> None:
    # tiktoken_ext.openai_public pins cl100k_base's SHA-256: bpe-openai's ranks are that table.
    assert hashlib.sha256(cl100k_file()).hexdigest() == \
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


@pytest.mark.parametrize("text", TEXTS)
def test_ids_decode_to_the_text(text: str) -> None:
    assert decode(ENC.encode_ordinary(text), "input") == text


def test_a_window_cut_inside_a_character_loses_only_that_character() -> None:
    # LangChain cuts a long text into windows of token ids; a window may split a UTF-8 character.
    text = "日本語のテキスト🧪🔬" * 3
    ids = ENC.encode_ordinary(text)
    cut_inside = 0
    for k in range(1, len(ids)):
        head, tail = ENC.decode_bytes(ids[:k]), ENC.decode_bytes(ids[k:])
        if min(len(head), len(tail)) < 4:  # a window this short may hold no whole character
            continue
        a, b = decode(ids[:k], "input"), decode(ids[k:], "input")
        if not _whole(head):
            cut_inside += 1
            assert text.startswith(a) and text.endswith(b)
            assert len(a) + len(b) == len(text) - 1  # the one split character is dropped
    assert cut_inside > 0, "no window boundary fell inside a character: the case is not exercised"


def _whole(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("ids", [[100_256], [100_257], [-1], [5, 10**9]])
def test_ids_outside_the_ordinary_tokens_are_refused(ids: list[int]) -> None:
    with pytest.raises(Undecodable, match="check_embedding_ctx_length=False"):
        decode(ids, "input")


def test_bytes_that_are_not_utf8_in_the_middle_are_refused() -> None:
    lone = next(t for t in range(256, 2000) if not _whole(ENC.decode_single_token_bytes(t))
            and ENC.decode_single_token_bytes(t)[0] >= 0xC0)
    with pytest.raises(Undecodable, match="UTF-8"):
        decode([*ENC.encode_ordinary("abc"), lone, *ENC.encode_ordinary(" def")], "input")


def test_openai_request_reads_ids_as_text() -> None:
    one = parse(EmbeddingsRequest, b'{"input": %s}' % str(ENC.encode_ordinary("hello world")).encode(), Limits(), "t")
    assert one.input == ["hello world"]
    ids = [ENC.encode_ordinary(t) for t in TEXTS]
    many = parse(EmbeddingsRequest, (f'{{"input": {ids}}}').encode(), Limits(), "t")
    assert many.input == TEXTS


def test_bad_ids_are_422_naming_the_langchain_setting() -> None:
    with pytest.raises(UnprocessableInput) as exc:
        parse(EmbeddingsRequest, b'{"input": [[1, 2], [100300]]}', Limits(), "t")
    assert "input[1][0]" in exc.value.message and LANGCHAIN_HINT in exc.value.message
    with pytest.raises(InvalidInput, match="too many inputs"):
        parse(EmbeddingsRequest, b'{"input": [[1], [2], [3]]}', Limits(max_inputs=2), "t")
    with pytest.raises(InvalidInput):
        parse(EmbeddingsRequest, b'{"input": [[1], []]}', Limits(), "t")


def test_other_protocols_still_refuse_ids() -> None:
    # Ollama has no token-id input: ids there would be read as the wrong vocabulary.
    with pytest.raises(UnprocessableInput, match="token-id"):
        parse(EmbedRequest, b'{"input": [1, 2, 3]}', Limits(), "t")
