"""SQL Server 2025 for the mssql suite: the `mssql` service of containers/compose.yaml (the local
stack's own file) through pytest-docker where a Docker engine runs, or an existing server named by
SQLEMBED_TEST_MSSQL_DSN (an ODBC connection string); otherwise every test skips with the reason.
The sqlembed service runs here over TLS with a certificate SQL Server trusts."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sqlembed.settings import Settings
from sqlembed.tls import write_selfsigned
from tests.support.server import ServerThread, with_settings

HERE = Path(__file__).parent
COMPOSE = HERE.parents[1] / "containers" / "compose.yaml"
CAPTURED = HERE / "captured"
API_KEY = "mssql-suite-" + secrets.token_hex(8)


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def _pyodbc() -> Any:
    try:
        import pyodbc
    except ImportError:
        pytest.skip("needs pyodbc and Microsoft ODBC Driver 18 (pip install 'sqlembed[mssql]')")
    if not any("ODBC Driver 18" in d for d in pyodbc.drivers()):
        pytest.skip("needs Microsoft ODBC Driver 18 for SQL Server")
    return pyodbc


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SQLEMBED_TEST_MSSQL_DSN") or _docker_engine():
        return
    skip = pytest.mark.skip(reason="needs a Docker engine (SQL Server 2025 via pytest-docker) or "
                                   "SQLEMBED_TEST_MSSQL_DSN pointing at a SQL Server 2025")
    for item in items:
        if "tests/mssql/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The compose file mounts <stack dir>/tls/ca.crt into SQL Server's trusted CAs.
    out = tmp_path_factory.mktemp("mssql-stack") / "tls"
    write_selfsigned(out, ["host.docker.internal", "localhost"], ["127.0.0.1"])
    return out


@pytest.fixture(scope="session")
def captured_requests() -> list[dict[str, Any]]:
    return []


@pytest.fixture(scope="session")
def service(base_settings: Settings, tls_dir: Path, captured_requests: list[dict[str, Any]]) -> Iterator[ServerThread]:
    """The service on all interfaces (the container must reach it), TLS, one API key, capturing requests."""

    @web.middleware
    async def capture(request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        headers = {k: ("<redacted>" if k.lower() in ("api-key", "authorization", "bearer") else v)
                   for k, v in request.headers.items()}
        captured_requests.append({"method": request.method, "path": request.path, "query": request.query_string,
                                  "headers": headers, "body": body.decode("utf-8", "replace")})
        return await handler(request)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls_dir / "server.crt", tls_dir / "server.key")
    srv = ServerThread(with_settings(base_settings, api_keys=API_KEY), ssl_context=ctx, host="0.0.0.0",
                       middlewares=(capture,))
    srv.start(verify=ssl.create_default_context(cafile=str(tls_dir / "ca.crt")))
    yield srv
    srv.stop()
    CAPTURED.mkdir(exist_ok=True)
    (CAPTURED / "sqlserver_requests.json").write_text(json.dumps(captured_requests[:20], indent=2) + "\n")


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE)


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # Only SQL Server: the service under test runs in this process, where requests can be captured.
    return ["up --build -d mssql"]


@pytest.fixture(scope="session")
def mssql_dsn(request: pytest.FixtureRequest, tls_dir: Path) -> str:
    pyodbc = _pyodbc()
    dsn = os.environ.get("SQLEMBED_TEST_MSSQL_DSN")
    if dsn:
        return dsn
    password = "Sq1!" + secrets.token_urlsafe(16)
    os.environ["MSSQL_SA_PASSWORD"] = password
    os.environ["SQLEMBED_API_KEYS"] = API_KEY  # compose checks every service's variables
    os.environ["SQLEMBED_STACK_DIR"] = str(tls_dir.parent)
    os.environ["SQLEMBED_MSSQL_PORT"] = str(_free_port())
    docker_ip = request.getfixturevalue("docker_ip")
    services = request.getfixturevalue("docker_services")
    port = services.port_for("mssql", 1433)
    dsn = (f"Driver={{ODBC Driver 18 for SQL Server}};Server={docker_ip},{port};UID=sa;PWD={password};"
           "TrustServerCertificate=yes;Encrypt=yes")

    def up() -> bool:
        try:
            pyodbc.connect(dsn, timeout=5).close()
            return True
        except pyodbc.Error:
            return False

    services.wait_until_responsive(check=up, timeout=180, pause=2)
    return dsn


@pytest.fixture(scope="session")
def database(mssql_dsn: str, service: ServerThread) -> Iterator[Any]:
    """A fresh database with sqlembed deployed against the running service."""
    import pyodbc

    from sqlembed import __version__
    from sqlembed.db.deploy import deploy
    from sqlembed.db.sqlfiles import load
    from sqlembed.db.variables import resolve

    name = f"sqlembed_test_{int(time.time())}"
    admin = pyodbc.connect(mssql_dsn, autocommit=True)
    admin.execute(f"CREATE DATABASE [{name}]")
    admin.execute("EXECUTE sp_configure 'external rest endpoint enabled', 1; RECONFIGURE WITH OVERRIDE;")
    conn = pyodbc.connect(mssql_dsn + f";Database={name}", autocommit=True)
    conn.execute(f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = '{'Mk1!' + secrets.token_urlsafe(16)}'")
    host = "host.docker.internal" if not os.environ.get("SQLEMBED_TEST_MSSQL_DSN") else \
        os.environ.get("SQLEMBED_TEST_SERVICE_HOST", "host.docker.internal")
    values = resolve({"SQLEMBED_URL": f"https://{host}:{service.port}", "SQLEMBED_API_KEY": API_KEY})
    deploy(conn, load(), values, version=__version__)
    conn.values = values  # type: ignore[attr-defined]
    yield conn
    conn.close()
    admin.execute(f"ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [{name}]")
    admin.close()
