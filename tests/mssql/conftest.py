"""SQL Server 2025 for the mssql suite.

Where: the `mssql` service of containers/compose.yaml through pytest-docker where a Docker engine
runs, or an existing server named by SQLEMBED_TEST_MSSQL_DSN (an ODBC connection string for
Microsoft's mssql-python driver; a `Driver=` key is ignored; .github/workflows/mssql.yml sets it).
Otherwise every test skips with the reason.

What: the sqlembed service runs in this process over TLS with a certificate SQL Server trusts
(SQLEMBED_TEST_TLS_DIR reuses a CA the server already trusts; otherwise one is written for the
compose stack to mount), with one API key, a request capture and a fault switch the tests use to
make the service answer 500 or 429, or go away, in the middle of a run. Each deployment the tests
need gets its own database (`deployment` factory), deployed as the owner; `app_user` is a
contained database user in `sqlembed_user` with only SELECT/UPDATE on the test tables: the caller
the procedures are written for.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
SERVICE_HOST = os.environ.get("SQLEMBED_TEST_SERVICE_HOST", "host.docker.internal")


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SQLEMBED_TEST_MSSQL_DSN") or _docker_engine():
        return
    skip = pytest.mark.skip(reason="needs a Docker engine (SQL Server 2025 via pytest-docker) or "
                                   "SQLEMBED_TEST_MSSQL_DSN pointing at a SQL Server 2025")
    for item in items:
        if "tests/mssql/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def _mssql_python() -> Any:
    try:
        import mssql_python
    except ImportError:
        pytest.skip("needs mssql-python (pip install 'sqlembed[mssql]'; libltdl7 on Debian)")
    return mssql_python


def connect(dsn: str, *, database: str | None = None, autocommit: bool = True, timeout: int = 15) -> Any:
    """A mssql-python connection for a DSN (Driver= dropped, as sqlembed db deploy does)."""
    from sqlembed.db.connect import mssql_python_args

    mssql_python = _mssql_python()
    conn_str, kwargs, _ = mssql_python_args(dsn + (f";Database={database}" if database else ""))
    kwargs.setdefault("timeout", timeout)
    return mssql_python.connect(conn_str, autocommit=autocommit, **kwargs)


def scalar(conn: Any, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, *params).fetchone()
    return None if row is None else row[0]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("SQLEMBED_TEST_TLS_DIR")
    if given:  # a CA the running server already trusts (the workflow writes it before a restart)
        return Path(given)
    # The compose file mounts <stack dir>/tls/ca.crt into SQL Server's trusted CAs.
    out = tmp_path_factory.mktemp("mssql-stack") / "tls"
    write_selfsigned(out, ["host.docker.internal", "localhost"], ["127.0.0.1"])
    return out


@dataclass
class Faults:
    """Makes the service misbehave on purpose: ``fail(path, status, after=n, times=m)`` answers the
    (n+1)-th request to ``path`` and the next m-1 with ``status`` (``"down"``: drops the connection
    without an answer, as a service that went away); ``down()`` drops every connection."""

    rules: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    is_down: bool = False

    def fail(self, path: str, status: int | str, *, after: int = 0, times: int = 1) -> None:
        self.seen[path] = 0
        self.rules.append({"path": path, "status": status, "after": after, "times": times})

    def down(self) -> None:
        self.is_down = True

    def clear(self) -> None:
        self.rules.clear()
        self.seen.clear()
        self.is_down = False


@pytest.fixture(scope="session")
def faults() -> Faults:
    return Faults()


@pytest.fixture(scope="session")
def captured_requests() -> list[dict[str, Any]]:
    return []


def make_service(settings: Settings, tls_dir: Path, captured: list[dict[str, Any]], faults: Faults,
                 **kw: Any) -> ServerThread:
    @web.middleware
    async def capture(request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        headers = {k: ("<redacted>" if k.lower() in ("api-key", "authorization", "bearer") else v)
                   for k, v in request.headers.items()}
        captured.append({"method": request.method, "path": request.path, "query": request.query_string,
                         "headers": headers, "body": body.decode("utf-8", "replace")})
        def drop() -> web.StreamResponse:
            assert request.transport is not None
            request.transport.close()  # no HTTP answer at all: SQL Server sees a transport failure
            raise web.HTTPServiceUnavailable()

        if faults.is_down:
            return drop()
        for rule in faults.rules:
            if rule["path"] == request.path:
                n = faults.seen[request.path] = faults.seen.get(request.path, 0) + 1
                if rule["after"] < n <= rule["after"] + rule["times"]:
                    if rule["status"] == "down":
                        return drop()
                    return web.json_response({"error": {"message": f"injected {rule['status']}", "type": "test",
                                                        "param": None, "code": "injected"}},
                                             status=rule["status"], headers={"Retry-After": "1"})
        return await handler(request)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls_dir / "server.crt", tls_dir / "server.key")
    srv = ServerThread(settings, ssl_context=ctx, host="0.0.0.0", middlewares=(capture,), **kw)
    srv.start(verify=ssl.create_default_context(cafile=str(tls_dir / "ca.crt")))
    return srv


@pytest.fixture(scope="session")
def service(base_settings: Settings, tls_dir: Path, captured_requests: list[dict[str, Any]],
            faults: Faults) -> Iterator[ServerThread]:
    """The service on all interfaces (the container must reach it), TLS, one API key."""
    srv = make_service(with_settings(base_settings, api_keys=API_KEY), tls_dir, captured_requests, faults)
    yield srv
    srv.stop()
    CAPTURED.mkdir(exist_ok=True)
    (CAPTURED / "sqlserver_requests.json").write_text(json.dumps(captured_requests[:40], indent=2) + "\n")


@pytest.fixture(scope="session")
def keyless_service(base_settings: Settings, tls_dir: Path, captured_requests: list[dict[str, Any]],
                    faults: Faults) -> Iterator[ServerThread]:
    srv = make_service(with_settings(base_settings, api_keys=""), tls_dir, captured_requests, faults)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE)


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # Only SQL Server: the service under test runs in this process, where requests can be captured.
    return ["up --build -d mssql"]


@pytest.fixture(scope="session")
def mssql_dsn(request: pytest.FixtureRequest, tls_dir: Path) -> str:
    mssql_python = _mssql_python()
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
    dsn = f"Server={docker_ip},{port};UID=sa;PWD={password};TrustServerCertificate=yes;Encrypt=yes"

    def up() -> bool:
        try:
            connect(dsn, timeout=5).close()
            return True
        except mssql_python.Error:
            return False

    services.wait_until_responsive(check=up, timeout=180, pause=2)
    return dsn


@pytest.fixture(scope="session")
def admin(mssql_dsn: str) -> Iterator[Any]:
    conn = connect(mssql_dsn)
    conn.execute("EXECUTE sp_configure 'external rest endpoint enabled', 1; RECONFIGURE WITH OVERRIDE;")
    conn.execute("EXECUTE sp_configure 'contained database authentication', 1; RECONFIGURE WITH OVERRIDE;")
    yield conn
    conn.close()


def database_name(tag: str) -> str:
    return f"sqlembed_{tag}_{int(time.time())}_{secrets.token_hex(2)}"


def database_url(dsn: str, name: str) -> str:
    """A SQLAlchemy URL for a database of the test server, as SQLEMBED_DATABASES holds it."""
    from sqlembed.db.connect import sqlalchemy_url

    url, _ = sqlalchemy_url(dsn + f";Database={name}")
    return url


@dataclass
class Deployment:
    name: str
    dsn: str
    owner: Any
    """A connection as the owner (sa), autocommit."""
    values: dict[str, str]
    service: ServerThread

    def connect(self, **kw: Any) -> Any:
        return connect(self.dsn, database=self.name, **kw)

    def url(self) -> str:
        """A SQLAlchemy URL for this database, as SQLEMBED_DATABASES holds it (the service's login)."""
        return database_url(self.dsn, self.name)


@pytest.fixture(scope="session")
def deployment(admin: Any, mssql_dsn: str, service: ServerThread) -> Iterator[Callable[..., Deployment]]:
    """``deployment(tag, service=..., api_key=..., **variables)``: a fresh database with sqlembed
    deployed by its owner against a running service; dropped at the end of the session."""
    from sqlembed import __version__
    from sqlembed.db.deploy import deploy
    from sqlembed.db.sqlfiles import load
    from sqlembed.db.variables import resolve

    made: list[Deployment] = []

    def make(tag: str, *, srv: ServerThread | None = None, api_key: str | None = API_KEY, preview: bool = False,
             name: str | None = None, **variables: str) -> Deployment:
        srv = srv or service
        name = name or database_name(tag)
        admin.execute(f"CREATE DATABASE [{name}]")
        admin.execute(f"ALTER DATABASE [{name}] SET CONTAINMENT = PARTIAL")
        owner = connect(mssql_dsn, database=name)
        owner.execute(f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = '{'Mk1!' + secrets.token_urlsafe(16)}'")
        if preview:
            owner.execute("ALTER DATABASE SCOPED CONFIGURATION SET PREVIEW_FEATURES = ON")
        given = {"SQLEMBED_URL": f"https://{SERVICE_HOST}:{srv.port}", **variables}
        if api_key:
            given["SQLEMBED_API_KEY"] = api_key
        values = resolve(given)
        deploy(owner, load(), values, version=__version__)
        d = Deployment(name, mssql_dsn, owner, values, srv)
        made.append(d)
        return d

    yield make
    for d in made:
        d.owner.close()
        admin.execute(f"ALTER DATABASE [{d.name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [{d.name}]")


@pytest.fixture(scope="session")
def database(deployment: Callable[..., Deployment]) -> Deployment:
    """The default deployment (Ollama format, API key, 384 float32 dimensions)."""
    return deployment("main", preview=True)


@dataclass
class AppUser:
    name: str
    password: str
    db: Deployment

    def connect(self, *, autocommit: bool = True) -> Any:
        base = ";".join(p for p in self.db.dsn.split(";") if p.split("=", 1)[0].strip().upper()
                        not in ("UID", "PWD", "USER ID", "PASSWORD", "DATABASE"))
        return connect(f"{base};UID={self.name};PWD={self.password}", database=self.db.name, autocommit=autocommit)

    def grant(self, table: str, *perms: str) -> None:
        self.db.owner.execute(f"GRANT {', '.join(perms)} ON {table} TO [{self.name}]")


def new_user(db: Deployment, prefix: str, *grants: str) -> AppUser:
    """A contained user, member of sqlembed_user, with these GRANT statements' rights (``{user}``
    stands for the name)."""
    name, password = f"{prefix}_{secrets.token_hex(3)}", "Us3r!" + secrets.token_urlsafe(16)
    db.owner.execute(f"CREATE USER [{name}] WITH PASSWORD = '{password}'; ALTER ROLE sqlembed_user ADD MEMBER [{name}]")
    for grant in grants:
        db.owner.execute(grant.format(user=f"[{name}]"))
    return AppUser(name, password, db)


@pytest.fixture(scope="session")
def app_user(database: Deployment) -> AppUser:
    """A contained user of the database, member of sqlembed_user and nothing else."""
    name, password = "app_" + secrets.token_hex(3), "Us3r!" + secrets.token_urlsafe(16)
    database.owner.execute(f"CREATE USER [{name}] WITH PASSWORD = '{password}'")
    database.owner.execute(f"ALTER ROLE sqlembed_user ADD MEMBER [{name}]")
    return AppUser(name, password, database)


def make_docs(conn: Any, table: str, texts: list[str | None], *, key: str = "id int NOT NULL PRIMARY KEY",
              dims: int = 384, base: str = "", keys: list[Any] | None = None) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({key}, body nvarchar(max) NULL, "
                 f"embedding VECTOR({dims}{base}) NULL)")
    cur = conn.cursor()
    rows = list(zip(keys or range(1, len(texts) + 1), texts, strict=True))
    if rows:
        cur.executemany(f"INSERT {table} (id, body) VALUES (?, ?)", rows)


CYRILLIC_KEYS = ["ключ-1", "ключ-2", "Москва", "ascii-key"]


def make_cyrillic_keyed(conn: Any, table: str) -> None:
    """A table keyed by varchar in a Cyrillic collation, in a database whose collation is Latin1:
    keys outside the database's code page (issue 22, item 6)."""
    conn.execute(
        f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id varchar(40) COLLATE Cyrillic_General_CI_AS "
        "NOT NULL PRIMARY KEY, body nvarchar(max) NULL, embedding VECTOR(384) NULL)")
    # Inserted as nvarchar: the column converts through its own (Cyrillic) code page.
    conn.cursor().executemany(f"INSERT {table} (id, body) VALUES (CAST(? AS nvarchar(40)), ?)",
                              [(k, f"text of {k}") for k in CYRILLIC_KEYS])
