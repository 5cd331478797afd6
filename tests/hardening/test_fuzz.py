"""Fuzzing (hypothesis) over every request parser, through the real server, and over the T-SQL
renderer. Brief in `make test`; `make fuzz` runs many more examples (SQLEMBED_FUZZ_EXAMPLES).

Properties: no request body, however hostile, gets a 5xx or a body outside the route's protocol
envelope; no variable value accepted by `db render` / `db deploy` changes the structure of the
script (it cannot end its string literal or identifier, open a comment or start a batch)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlembed import __version__
from sqlembed.api.custom import parse_path, select
from sqlembed.api.schemas.common import Limits, parse
from sqlembed.api.schemas.ollama import EmbedRequest
from sqlembed.db.sqlfiles import load, mask, render, split_batches, substitute
from sqlembed.db.variables import SECRET_VARS, VARIABLES, resolve
from sqlembed.errors import InvalidInput, UnprocessableInput

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("SQLEMBED_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("SQLEMBED_FUZZ_EXAMPLES") is None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                               inner, max_size=4),
                           max_leaves=12)
KEYS = ["model", "input", "prompt", "encoding_format", "dimensions", "truncate", "options", "keep_alive", "user",
        "rows", "id", "text", "ids", "texts", "db", "table", "key", "vector", "where", "batch_rows", "target_table",
        "input_type", "sql_rest_options"]
bodies = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), json_values, max_size=6)
ROUTES = ["/api/embed", "/api/embeddings", "/v1/embeddings", "/openai/deployments/x/embeddings",
          "/v1/sqlserver/embed", "/v1/jobs"]


def _check_envelope(path: str, r: httpx.Response) -> None:
    assert r.status_code < 500, (path, r.status_code, r.text[:300])
    body = r.json()  # always JSON
    if r.status_code >= 400:
        if path.startswith(("/v1/", "/openai/")):
            assert isinstance(body["error"], dict) and body["error"]["message"], body
        else:
            assert isinstance(body["error"], str) and body["error"], body


@FUZZ
@given(path=st.sampled_from(ROUTES), body=bodies)
def test_request_bodies_never_5xx(fake_url: str, path: str, body: dict[str, Any]) -> None:
    r = httpx.post(fake_url + path, content=json.dumps(body), headers={"content-type": "application/json"},
                   timeout=60)
    _check_envelope(path, r)


@FUZZ
@given(path=st.sampled_from(ROUTES), raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       ctype=st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain",
                              "application/xml", "multipart/form-data", ""]))
def test_raw_bytes_never_5xx(fake_url: str, path: str, raw: bytes, ctype: str) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = httpx.post(fake_url + path, content=raw, headers=headers, timeout=60)
    _check_envelope(path, r)


@FUZZ
@given(value=json_values, limit=st.integers(1, 8))
def test_request_texts_are_strings_or_a_4xx_error(value: Any, limit: int) -> None:
    try:
        texts = parse(EmbedRequest, orjson.dumps({"model": "m", "input": value}), Limits(max_inputs=limit),
                      "fuzz").input
    except (InvalidInput, UnprocessableInput):
        return
    assert isinstance(texts, list) and all(isinstance(t, str) for t in texts) and 0 <= len(texts) <= limit


@FUZZ
@given(path=st.text(alphabet="$.[]*'\"0123456789abc_- ", max_size=20), doc=json_values)
def test_custom_format_paths_parse_or_refuse(path: str, doc: Any) -> None:
    """A path either refuses with ValueError or selects only values that are in the document,
    the same ones each time (and ``$`` the document itself); nothing else escapes."""
    try:
        steps = parse_path(path)
    except ValueError:
        assert path.strip() != "$"
        return

    def parts(node: Any) -> list[Any]:
        inner = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        return [node, *(p for child in inner for p in parts(child))]

    found = select(doc, steps)
    assert isinstance(found, list) and found == select(doc, steps)
    every = parts(doc)
    assert all(any(v is p for p in every) for v in found), (path, found)
    if path == "$":
        assert found == [doc]


# --- the T-SQL renderer ---------------------------------------------------------------------------

FILES = load()
BASE = resolve({"SQLEMBED_URL": "https://sqlembed.example:8888"})
hostile = st.text(max_size=40) | st.sampled_from([
    "x'; DROP TABLE t; --", "a]; SELECT 1; --", "/* open", "*/", "\nGO\n", "$(SQLEMBED_URL)", "N'", "''", "--",
    "https://h:1/a'b", "https://h:1/a--b", "all-minilm'--", "42; SHUTDOWN", "1e3", "sqlembed]", "\u2018quote\u2019",
])


def skeleton(script: str) -> str:
    """The script's structure: strings, quoted names and comments blanked, words reduced to one mark."""
    flat = " ".join(re.sub(r"[A-Za-z0-9_]+", "w", mask(script)).split())
    return re.sub(r"'\s*'", "''", flat)  # an empty literal and a blanked one are the same shape


BASE_SKELETON = skeleton(render(FILES, BASE, __version__))


@FUZZ
@given(name=st.sampled_from(sorted(set(VARIABLES) - SECRET_VARS)), value=hostile)
def test_render_never_lets_a_value_out_of_its_place(name: str, value: str) -> None:
    try:
        values = resolve({"SQLEMBED_URL": "https://sqlembed.example:8888", name: value})
    except InvalidInput:
        return
    assert skeleton(render(FILES, values, __version__)) == BASE_SKELETON, (name, value)


SECRET_BATCHES = [(f.name, b) for f in FILES for b in split_batches(f.text) if "$(SQLEMBED_API_KEY)" in b.text]


@FUZZ
@given(key=hostile)
def test_deploy_substitution_keeps_the_api_key_inside_its_literal(key: str) -> None:
    assert SECRET_BATCHES, "some batch takes the key"
    try:
        values = resolve({"SQLEMBED_URL": "https://sqlembed.example:8888", "SQLEMBED_API_KEY": key})
    except InvalidInput:
        return
    benign = {**values, "SQLEMBED_API_KEY": "k"}
    for where, batch in SECRET_BATCHES:
        assert skeleton(substitute(batch, values, where=where)) == skeleton(substitute(batch, benign, where=where))


@pytest.mark.parametrize("value", ["\u00b9", "\u0663", "\uff13", "3 ", " 3", "+3", "0x10"])
def test_regression_numeric_variables_take_ascii_digits_only(value: str) -> None:
    # Found by test_render_never_lets_a_value_out_of_its_place: '¹'.isdigit() is True and int('¹')
    # raised; '٣' passed and would have been rendered into T-SQL as a number.
    with pytest.raises(InvalidInput, match="integer"):
        resolve({"SQLEMBED_URL": "https://sqlembed.example:8888", "SQLEMBED_TIMEOUT": value})
