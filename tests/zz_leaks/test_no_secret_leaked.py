"""Runs last (directory order): no API key, database password or connection string that the suite
used appears in any log line, error body or log file the suite produced."""

from __future__ import annotations

import pytest

from tests.support import leaks


def test_no_secret_in_logs_error_bodies_or_log_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not leaks.SECRETS:
        pytest.skip("no test that uses secrets ran in this session (run the whole suite)")
    assert any(" sqlembed." in t for t in leaks.CAPTURED), "the service's own log records were captured"
    assert any('"error"' in t for t in leaks.CAPTURED), "error bodies were captured"
    found = [(s[:4] + "...", text[:200]) for text in leaks.CAPTURED for s in leaks.SECRETS if s in text]
    assert not found, found[:5]
    root = tmp_path_factory.getbasetemp()
    files = [p for p in root.rglob("*.log") if p.is_file()]
    for path in files:
        text = path.read_text(errors="replace")
        hits = [s[:4] + "..." for s in leaks.SECRETS if s in text]
        assert not hits, f"{path.relative_to(root)} contains {hits}"


def test_secrets_were_registered_by_the_suite() -> None:
    if not leaks.SECRETS:
        pytest.skip("no test that uses secrets ran in this session (run the whole suite)")
    # The auth tests and the SQL Server simulator register their keys; a scan over nothing proves nothing.
    assert any(len(s) >= 8 for s in leaks.SECRETS)
