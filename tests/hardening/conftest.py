from __future__ import annotations

import ssl

import pytest

from sqlembed.tls import TlsFiles, server_context, write_selfsigned


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_selfsigned(tmp_path_factory.mktemp("tls"), ["localhost"], ["127.0.0.1"])


@pytest.fixture(scope="session")
def server_tls(tls_files: TlsFiles) -> ssl.SSLContext:
    # The same context `sqlembed serve --tls-cert/--tls-key` builds.
    return server_context(tls_files.cert, tls_files.key)
