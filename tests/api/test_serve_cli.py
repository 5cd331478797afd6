"""`sqlembed serve` as a user runs it: a subprocess that builds the default model on first start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.support import leaks

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_builds_default_model_on_first_start(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "SQLEMBED_MODEL_DIR": str(tmp_path / "models"), "HF_HUB_OFFLINE": "1",
           "SQLEMBED_API_KEYS": "cli-test-key"}
    env.pop("SQLEMBED_EVENT_LOOP", None)  # the default (auto) is what this checks
    leaks.register("cli-test-key")
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("server never became ready:\n" + log.read_text())
        text = log.read_text()
        assert "building it now (first start" in text
        # The server extra brings uvloop (not on Windows) and `auto` serves on it (issue 24).
        assert "(event loop: uvloop " in text, text
        oc = openai.OpenAI(base_url=url + "/v1", api_key="cli-test-key")
        assert len(oc.embeddings.create(model="all-minilm", input="from the CLI").data[0].embedding) == 384
        ol = ollama.Client(host=url, headers={"Authorization": "Bearer cli-test-key"})
        assert len(ol.embed(model="all-minilm", input="from the CLI").embeddings[0]) == 384
        listed = subprocess.run([sys.executable, "-m", "sqlembed", "model", "list"], env=env,
                                capture_output=True, text=True, check=True).stdout
        assert "all-minilm-l6-v2-fp32" in listed and "384" in listed
    finally:
        proc.terminate()
        proc.wait(30)
    assert "cli-test-key" not in log.read_text()
