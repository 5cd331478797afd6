"""Contract A9: HTTPS with the certificate `sqlembed tls selfsigned` writes, verified by real clients."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from cryptography import x509

from sqlembed.settings import Settings
from tests.support.server import running

pytestmark = pytest.mark.slow


def test_selfsigned_cert_serves_https(base_settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "tls"
    cli = subprocess.run(
        [sys.executable, "-m", "sqlembed", "tls", "selfsigned", "--host", "sqlembed.local",
         "--ip", "127.0.0.1", "--out", str(out)], capture_output=True, text=True, check=True)
    assert "/var/opt/mssql/security/ca-certificates/" in cli.stdout
    assert "LocalMachine\\Root" in cli.stdout
    assert (out / "server.key").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"sqlembed.local", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(out / "server.crt", out / "server.key")
    ca = ssl.create_default_context(cafile=str(out / "ca.crt"))
    with running(base_settings, ssl_context=ctx, verify=ca) as srv:
        assert srv.url.startswith("https://")
        oc = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", http_client=httpx.Client(verify=ca))
        assert len(oc.embeddings.create(model="all-minilm", input="tls").data[0].embedding) == 384
        ol = ollama.Client(host=srv.url, verify=ca)
        assert len(ol.embed(model="all-minilm", input="tls").embeddings[0]) == 384
        # A client that does not trust the CA must refuse the connection.
        with pytest.raises(httpx.ConnectError):
            httpx.get(srv.url + "/healthz")
