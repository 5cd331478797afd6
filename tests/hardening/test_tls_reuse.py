"""What a new TLS connection costs depends on what the server offers (issue 24): TLS 1.3, an ECDSA
certificate from `sqlembed tls selfsigned`, session tickets so a returning client resumes instead
of a full handshake, and keep-alive so a client that keeps its connection pays nothing. Checked
with the benchmark's own raw client (bench/rowbyrow.py), so the benchmark counts what it says."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator

import pytest

from sqlembed.benchmark.rowbyrow import RawClient
from sqlembed.settings import Settings
from sqlembed.tls import TlsFiles
from tests.support.fake import FakeBackend
from tests.support.server import ServerThread, running

BODY = json.dumps({"model": "all-minilm", "input": ["one row of SQL Server's"]}).encode()


@pytest.fixture(scope="module")
def tls_server(fake_settings: Settings, server_tls: ssl.SSLContext, tls_files: TlsFiles) -> Iterator[ServerThread]:
    verify = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    with running(fake_settings, backend=FakeBackend(), ssl_context=server_tls, verify=verify) as srv:
        yield srv


@pytest.fixture()
def client_ctx(tls_files: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files.ca_cert))


def test_tls13_with_the_ecdsa_certificate(tls_server: ServerThread, client_ctx: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port)) as raw, \
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.3"
        cert = tls.getpeercert(binary_form=True)
        assert cert is not None
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        assert isinstance(x509.load_der_x509_certificate(cert).public_key(), ec.EllipticCurvePublicKey)


def test_a_returning_client_resumes_its_session(tls_server: ServerThread, client_ctx: ssl.SSLContext) -> None:
    client = RawClient(tls_server.port, "/api/embed", ctx=client_ctx, new_conn=True, resume=True)
    request = client.request(BODY)
    replies = [json.loads(client.post(request)) for _ in range(5)]
    assert all(len(r["embeddings"][0]) == 384 for r in replies)
    assert (client.handshakes, client.resumed) == (5, 4), "every handshake after the first resumes (tickets)"


def test_a_client_that_does_not_offer_a_session_gets_a_full_handshake(tls_server: ServerThread,
                                                                      client_ctx: ssl.SSLContext) -> None:
    client = RawClient(tls_server.port, "/api/embed", ctx=client_ctx, new_conn=True)
    request = client.request(BODY)
    for _ in range(3):
        client.post(request)
    assert (client.handshakes, client.resumed) == (3, 0)


def test_keep_alive_serves_serial_calls_on_one_connection(tls_server: ServerThread,
                                                          client_ctx: ssl.SSLContext) -> None:
    client = RawClient(tls_server.port, "/api/embed", ctx=client_ctx)
    request = client.request(BODY)
    client.post(request)
    first = client._sock
    for _ in range(5):
        assert len(json.loads(client.post(request))["embeddings"][0]) == 384
    assert client._sock is first and client.handshakes == 1 and client.closed_by_server == 0
    client.close()
