"""Connections to SQL Server. Microsoft's ``mssql-python`` (the ``mssql`` extra; it bundles ODBC
Driver 18, so pip alone installs it; on Debian it needs ``libltdl7``) through SQLAlchemy 2.1's
``mssql+mssqlpython`` dialect is the default; ``mssql+pyodbc://`` URLs still work with pyodbc and
an installed ODBC driver.

A DSN is one of: an ODBC connection string (``Server=host,1433;Database=app;UID=...;PWD=...``; a
``Driver=`` key is accepted and ignored by mssql-python), an ``mssql+mssqlpython://`` URL or an
``mssql+pyodbc://`` URL. Errors name the server and the driver's reason, never the password.
"""

from __future__ import annotations

import struct
from typing import Any

from sqlembed.errors import BackendUnavailable, DatabaseUnavailable, InvalidInput, summary

# msodbcsql's pre-connect attribute for an access token (SQL_COPT_SS_ACCESS_TOKEN).
SQL_COPT_SS_ACCESS_TOKEN = 1256

# Keyword names, not passwords.
_SYNONYMS = {"user id": "UID", "user": "UID", "uid": "UID", "password": "PWD", "pwd": "PWD",  # nosec B105
             "initial catalog": "Database", "database": "Database", "data source": "Server", "server": "Server",
             "addr": "Server", "address": "Server"}
_TIMEOUT_KEYS = {"connection timeout", "connect timeout", "logintimeout", "login timeout", "timeout"}
# mssql-python pins its own driver and refuses these keys.
_DROP = {"driver", "app", "application name", "mars_connection", "multipleactiveresultsets"}


def token_struct(token: str) -> bytes:
    raw = token.encode("utf-16-le")
    return struct.pack(f"<I{len(raw)}s", len(raw), raw)


def parse_odbc(dsn: str) -> list[tuple[str, str]]:
    """``key=value`` pairs of an ODBC connection string ({braced} values may hold ; and }} escapes)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(dsn)
    while i < n:
        while i < n and dsn[i] in " ;\t":
            i += 1
        if i >= n:
            break
        eq = dsn.find("=", i)
        if eq < 0:
            raise InvalidInput("the connection string has a part without '=' (values with ';' go in {braces})")
        key = dsn[i:eq].strip()
        i = eq + 1
        while i < n and dsn[i] in " \t":
            i += 1
        if i < n and dsn[i] == "{":
            i += 1
            value: list[str] = []
            while True:
                if i >= n:
                    raise InvalidInput(f"unclosed brace in the value of {key!r} in the connection string")
                if dsn[i] == "}":
                    if i + 1 < n and dsn[i + 1] == "}":
                        value.append("}")
                        i += 2
                        continue
                    i += 1
                    break
                value.append(dsn[i])
                i += 1
            out.append((key, "".join(value)))
        else:
            end = dsn.find(";", i)
            end = n if end < 0 else end
            out.append((key, dsn[i:end].strip()))
            i = end
    return out


def _brace(v: str) -> str:
    return "{" + v.replace("}", "}}") + "}" if any(c in v for c in ";{}=") or v != v.strip() else v


def mssql_python_args(dsn: str) -> tuple[str, dict[str, Any], list[str]]:
    """(connection string for mssql_python.connect, its keyword arguments, the secrets in it)."""
    parts: list[str] = []
    kwargs: dict[str, Any] = {}
    secrets: list[str] = []
    for key, value in parse_odbc(dsn):
        k = key.lower()
        if k in _DROP:
            continue
        if k in _TIMEOUT_KEYS:
            if not value.isdigit():
                raise InvalidInput(f"{key} must be a whole number of seconds")
            kwargs["timeout"] = int(value)
            continue
        name = _SYNONYMS.get(k, key)
        if name == "PWD" and value:
            secrets.append(value)
        parts.append(f"{name}={_brace(value)}")
    return ";".join(parts), kwargs, secrets


def _server(dsn: str) -> str:
    try:
        if "://" in dsn:
            from sqlalchemy.engine import make_url

            u = make_url(dsn)
            return f"{u.host or '?'}{',' + str(u.port) if u.port else ''}"
        return next((v for k, v in parse_odbc(dsn) if _SYNONYMS.get(k.lower()) == "Server"), "?")
    except Exception:
        return "?"


def _failure(exc: BaseException, dsn: str, secrets: list[str]) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"cannot connect to SQL Server at {_server(dsn)}: "
                               f"{summary(exc, secrets=tuple(secrets))}")


def sqlalchemy_url(dsn: str) -> tuple[str, dict[str, Any]]:
    """(SQLAlchemy URL, connect_args) for a DSN of any accepted form; ODBC strings become
    mssql+mssqlpython, their login timeout a connect argument."""
    if "://" in dsn:
        if not dsn.startswith(("mssql+mssqlpython://", "mssql+pyodbc://")):
            raise InvalidInput("give an ODBC connection string or an mssql+mssqlpython:// or mssql+pyodbc:// URL")
        return dsn, {}
    from sqlalchemy.engine import URL

    pairs = {_SYNONYMS.get(k.lower(), k): v for k, v in parse_odbc(dsn) if k.lower() not in _DROP}
    server = pairs.pop("Server", "")
    host, _, port = server.partition(",")
    timeout = next((pairs.pop(k) for k in list(pairs) if k.lower() in _TIMEOUT_KEYS), None)
    query = dict(pairs)
    user, password, database = query.pop("UID", None), query.pop("PWD", None), query.pop("Database", None)
    url = URL.create("mssql+mssqlpython", username=user, password=password, host=host or None,
                     port=int(port) if port.strip().isdigit() else None, database=database, query=query)
    if timeout is not None and not timeout.isdigit():
        raise InvalidInput("the login timeout must be a whole number of seconds")
    return url.render_as_string(hide_password=False), ({"timeout": int(timeout)} if timeout else {})


def sqlalchemy_engine(dsn: str, **kw: Any) -> Any:
    try:
        from sqlalchemy import create_engine
    except ImportError as e:
        raise BackendUnavailable("SQL Server targets need the mssql extra: pip install 'sqlembed[mssql]'") from e
    url, connect_args = sqlalchemy_url(dsn)
    return create_engine(url, connect_args={**connect_args, **kw.pop("connect_args", {})}, **kw)


def connect(dsn: str, *, access_token: str | None = None, timeout: int = 30) -> Any:
    """An autocommit DB-API connection for ``sqlembed db deploy|status``."""
    attrs: dict[int, int | str | bytes] = {SQL_COPT_SS_ACCESS_TOKEN: token_struct(access_token)} if access_token else {}
    if dsn.startswith("mssql+pyodbc://"):
        return _connect_pyodbc(dsn, attrs, timeout)
    if "://" in dsn:
        if not dsn.startswith("mssql+mssqlpython://"):
            raise InvalidInput("give an ODBC connection string or an mssql+mssqlpython:// or mssql+pyodbc:// URL")
        from sqlalchemy.dialects.mssql.mssqlpython import MSDialect_mssqlpython
        from sqlalchemy.engine import make_url

        url = make_url(dsn)
        args, _ = MSDialect_mssqlpython().create_connect_args(url)
        conn_str, kwargs, secrets = str(args[0]), dict[str, Any](), [url.password or ""]
    else:
        conn_str, kwargs, secrets = mssql_python_args(dsn)
    try:
        import mssql_python
    except ImportError as e:
        raise BackendUnavailable("sqlembed db needs the mssql extra: pip install 'sqlembed[mssql]' "
                                 "(and libltdl7 on Debian/Ubuntu)") from e
    kwargs.setdefault("timeout", timeout)
    try:
        conn = mssql_python.connect(conn_str, autocommit=True, attrs_before=attrs or None, **kwargs)
    except (mssql_python.Error, mssql_python.exceptions.ConnectionStringParseError) as exc:
        raise _failure(exc, dsn, secrets) from None
    conn.timeout = 0  # DDL and large batches may run long
    return conn


def _connect_pyodbc(dsn: str, attrs: dict[int, int | str | bytes], timeout: int) -> Any:
    try:
        import pyodbc
        from sqlalchemy.dialects.mssql.pyodbc import MSDialect_pyodbc
        from sqlalchemy.engine import make_url
    except ImportError as e:
        raise BackendUnavailable("mssql+pyodbc:// needs pyodbc and an ODBC driver (pip install pyodbc)") from e
    url = make_url(dsn)
    args, _ = MSDialect_pyodbc().create_connect_args(url)
    try:
        conn = pyodbc.connect(str(args[0]), autocommit=True, timeout=timeout, attrs_before=attrs)
    except pyodbc.Error as exc:
        raise _failure(exc, dsn, [url.password or ""]) from None
    conn.timeout = 0
    return conn
