"""Bulk-job database targets: one interface (``base.BulkTarget``), one implementation per database."""

from __future__ import annotations

from sqlembed.db.targets.base import BulkTarget, EmbeddingId, PendingSummary, TableInfo
from sqlembed.db.targets.spec import PendingRow, TableSpec, WriteRow, content_hash
from sqlembed.errors import InvalidInput

__all__ = ["BulkTarget", "EmbeddingId", "PendingRow", "PendingSummary", "TableInfo", "TableSpec", "WriteRow",
           "content_hash", "open_target"]


def open_target(spec: TableSpec, retry_s: float = 60.0) -> BulkTarget:
    if spec.url.startswith("sqlite"):
        from sqlembed.db.targets.sqlite import SqliteTarget

        return SqliteTarget(spec, retry_s)
    if spec.url.startswith("mssql") or "://" not in spec.url:
        from sqlembed.db.targets.mssql import MssqlTarget

        return MssqlTarget(spec, retry_s)
    raise InvalidInput(f"databases of type {spec.url.split(':', 1)[0]!r} are not supported (sqlite, mssql)")
