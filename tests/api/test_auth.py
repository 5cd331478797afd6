"""Contract A6: api-key, Authorization: Bearer, a header named Bearer, or ?api-key=; 401 never echoes."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import openai
import pytest

from sqlembed.settings import Settings
from tests.support.fake import FakeBackend
from tests.support.server import ServerThread, running, with_settings

KEY = "s3cr3t-key-0123456789"
OTHER = "second-key"


@pytest.fixture(scope="module")
def auth_server(fake_settings: Settings) -> Iterator[ServerThread]:
    with running(with_settings(fake_settings, api_keys=f"{KEY},{OTHER}"), backend=FakeBackend()) as srv:
        yield srv


@pytest.mark.parametrize("headers", [
    {"api-key": KEY},
    {"Authorization": f"Bearer {KEY}"},
    {"authorization": f"bearer {OTHER}"},
    {"Bearer": KEY},
])
def test_accepted_key_forms(auth_server: ServerThread, headers: dict[str, str]) -> None:
    r = httpx.post(auth_server.url + "/api/embed", json={"model": "all-minilm", "input": "a"}, headers=headers)
    assert r.status_code == 200


def test_query_string_key(auth_server: ServerThread) -> None:
    # HTTPEndpointQueryString credentials append the key to the URL.
    r = httpx.post(auth_server.url + "/v1/embeddings", params={"api-key": KEY}, json={"input": "a"})
    assert r.status_code == 200


@pytest.mark.parametrize(("path", "proto"), [("/api/embed", "ollama"), ("/v1/embeddings", "openai"),
                                             ("/api/tags", "ollama"), ("/v1/models", "openai"),
                                             ("/metrics", "ollama"), ("/openapi.json", "ollama")])
def test_missing_or_wrong_key_is_401_without_echo(auth_server: ServerThread, path: str, proto: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-key-DO-NOT-ECHO"
    method = "POST" if "embed" in path else "GET"
    caplog.set_level(logging.DEBUG)
    for headers in ({}, {"api-key": wrong}, {"Authorization": f"Bearer {wrong}"}):
        r = httpx.request(method, auth_server.url + path, json={"input": "a"}, headers=headers,
                          params={"api-key": wrong} if not headers else None)
        assert r.status_code == 401
        assert wrong not in r.text and KEY not in r.text
        body = r.json()
        msg = body["error"]["message"] if proto == "openai" else body["error"]
        assert "API key" in msg
    server_logs = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("sqlembed", "aiohttp")))
    assert "/api/" in server_logs or "/v1/" in server_logs or path in server_logs, "access log captured"
    assert wrong not in server_logs and KEY not in server_logs


def test_open_paths_need_no_key(auth_server: ServerThread) -> None:
    for path in ("/", "/healthz", "/readyz"):
        assert httpx.get(auth_server.url + path).status_code == 200


def test_openai_client_with_key(auth_server: ServerThread) -> None:
    good = openai.OpenAI(base_url=auth_server.url + "/v1", api_key=KEY)
    assert len(good.embeddings.create(model="all-minilm", input="x").data) == 1
    bad = openai.OpenAI(base_url=auth_server.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="all-minilm", input="x")
