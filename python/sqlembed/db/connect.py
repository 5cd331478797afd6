"""Connections to SQL Server through pyodbc (the ``mssql`` extra): an ODBC connection string or a
SQLAlchemy ``mssql+pyodbc://`` URL, optionally with a Microsoft Entra access token."""

from __future__ import annotations

import struct
from typing import Any

from sqlembed.errors import BackendUnavailable, InvalidInput

# msodbcsql's pre-connect attribute for an access token (SQL_COPT_SS_ACCESS_TOKEN).
SQL_COPT_SS_ACCESS_TOKEN = 1256


def token_struct(token: str) -> bytes:
    raw = token.encode("utf-16-le")
    return struct.pack(f"<I{len(raw)}s", len(raw), raw)


def odbc_string(dsn: str) -> str:
    """An ODBC connection string from either form; the URL form goes through SQLAlchemy."""
    if "://" not in dsn:
        return dsn
    if not dsn.startswith("mssql+pyodbc://"):
        raise InvalidInput("--dsn takes an ODBC connection string or an mssql+pyodbc:// URL")
    try:
        from sqlalchemy.dialects.mssql.pyodbc import MSDialect_pyodbc
        from sqlalchemy.engine import make_url
    except ImportError as e:
        raise BackendUnavailable("mssql+pyodbc:// URLs need the mssql extra: pip install 'sqlembed[mssql]'") from e
    args, _ = MSDialect_pyodbc().create_connect_args(make_url(dsn))
    return str(args[0])


def connect(dsn: str, *, access_token: str | None = None, timeout: int = 30) -> Any:
    try:
        import pyodbc
    except ImportError as e:
        raise BackendUnavailable("sqlembed db needs the mssql extra and an ODBC driver: "
                                 "pip install 'sqlembed[mssql]' and Microsoft ODBC Driver 18") from e
    attrs = {SQL_COPT_SS_ACCESS_TOKEN: token_struct(access_token)} if access_token else {}
    conn = pyodbc.connect(odbc_string(dsn), autocommit=True, timeout=timeout, attrs_before=attrs)
    conn.timeout = 0  # DDL and large batches may run long
    return conn
