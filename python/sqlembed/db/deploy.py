"""``sqlembed db deploy``: bootstrap -> pending migrations (journaled) -> every object, under an applock.

Works on any DB-API 2 connection to SQL Server (pyodbc); it never reads settings itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlembed.db.sqlfiles import SqlFile, migration_block, substitute
from sqlembed.db.variables import SECRET_VARS
from sqlembed.errors import DeployError, SqlembedError

log = logging.getLogger(__name__)

APPLOCK = "sqlembed.deploy"


class Cursor(Protocol):
    def execute(self, sql: str, *params: Any) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...
    def nextset(self) -> Any: ...


class Connection(Protocol):
    """An autocommit DB-API connection: deploy opens transactions itself where it needs them."""

    def cursor(self) -> Any: ...


@dataclass
class DeployReport:
    applied_migrations: list[str] = field(default_factory=list)
    skipped_migrations: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)


def _run(cur: Cursor, f: SqlFile, values: Mapping[str, str], on_batch: Callable[[str], None] | None) -> None:
    for batch in f.batches():
        sql = substitute(batch, values, where=f.name)
        try:
            cur.execute(sql)
            # pyodbc reports errors of later statements in a batch only while draining results.
            while cur.nextset():
                pass
        except Exception as exc:
            raise DeployError(f.name, batch.line, _clean(exc, values)) from None
        if on_batch is not None:
            on_batch(f.name)


def _clean(exc: Exception, values: Mapping[str, str]) -> str:
    text = str(exc)
    for name in SECRET_VARS:
        secret = values.get(name)
        if secret:
            text = text.replace(secret, "<secret>")
    return text


def applied_migrations(conn: Connection) -> dict[str, str]:
    cur = conn.cursor()
    cur.execute("IF OBJECT_ID(N'sqlembed.migrations', N'U') IS NOT NULL "
                "SELECT name, checksum FROM sqlembed.migrations ELSE SELECT TOP 0 N'' AS name, '' AS checksum")
    return {str(r[0]): str(r[1]) for r in cur.fetchall()}


def deploy(conn: Connection, files: list[SqlFile], values: Mapping[str, str], *, version: str,
           on_batch: Callable[[str], None] | None = None) -> DeployReport:
    report = DeployReport()
    cur = conn.cursor()
    cur.execute("DECLARE @r int; EXEC @r = sys.sp_getapplock @Resource = ?, @LockMode = 'Exclusive', "
                "@LockOwner = 'Session', @LockTimeout = 60000; SELECT @r;", APPLOCK)
    row = cur.fetchone()
    if row is None or int(row[0]) < 0:
        raise SqlembedError("another sqlembed deploy holds the lock on this database; try again later")
    try:
        for f in (f for f in files if f.kind == "bootstrap"):
            _run(cur, f, values, on_batch)
        applied = applied_migrations(conn)
        for f in (f for f in files if f.kind == "migration"):
            if f.name in applied:
                if applied[f.name] != f.checksum:
                    raise DeployError(f.name, 1, "this migration was applied with different content (checksum "
                                      f"{applied[f.name][:12]}..., file {f.checksum[:12]}...); applied migrations "
                                      "are never edited: add a new migration instead")
                report.skipped_migrations.append(f.name)
                continue
            # A migration and its journal row commit together or not at all: the same block
            # `db render` writes, so both paths behave alike when a step fails half-way.
            try:
                cur.execute(migration_block(f, values, version))
                while cur.nextset():
                    pass
            except Exception as exc:
                cur.execute("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;")
                raise DeployError(f.name, 1, _clean(exc, values)) from None
            if on_batch is not None:
                on_batch(f.name)
            report.applied_migrations.append(f.name)
            log.info("applied migration %s", f.name)
        for f in (f for f in files if f.kind == "object"):
            _run(cur, f, values, on_batch)
            report.objects.append(f.name)
        shown = {k: v for k, v in values.items() if k not in SECRET_VARS}
        cur.execute("INSERT sqlembed.deployments (sqlembed_version, variables) VALUES (?, ?)",
                    version, json.dumps(shown, sort_keys=True))
    finally:
        try:
            cur.execute("EXEC sys.sp_releaseapplock @Resource = ?, @LockOwner = 'Session';", APPLOCK)
        except Exception as exc:  # the session ending releases it anyway
            log.warning("could not release the deploy lock: %s", type(exc).__name__)
    return report


def status(conn: Connection) -> dict[str, Any]:
    cur = conn.cursor()
    migrations = []
    if applied_migrations(conn):
        cur.execute("SELECT name, checksum, sqlembed_version, applied_at FROM sqlembed.migrations ORDER BY name")
        migrations = [{"name": r[0], "checksum": r[1], "version": r[2], "applied_at": str(r[3])}
                      for r in cur.fetchall()]
    cur.execute("IF OBJECT_ID(N'sqlembed.deployments', N'U') IS NOT NULL "
                "SELECT TOP 1 sqlembed_version, deployed_at, variables FROM sqlembed.deployments "
                "ORDER BY deployment_id DESC ELSE SELECT TOP 0 N'', NULL, N''")
    last = cur.fetchone()
    return {"migrations": migrations,
            "last_deployment": None if last is None else
            {"version": last[0], "deployed_at": str(last[1]), "variables": json.loads(last[2] or "{}")}}
