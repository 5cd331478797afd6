"""The end-of-session leak scan (tests/conftest.py) finds what it must, so its silence means something."""

from __future__ import annotations

from pathlib import Path

from tests.support import leaks


def test_a_secret_in_a_log_line_an_error_body_or_a_log_file_is_found(tmp_path: Path) -> None:
    secret = "k3y-0123456789"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "serve.log").write_text(f"started with {secret}\n")
    found = leaks.scan(tmp_path, {secret}, ["INFO sqlembed.x: ready", f'{{"error": "bad key {secret}"}}'])
    assert len(found) == 2 and "serve.log" in found[1] and "error body" in found[0]
    assert "k3y-0123456789" not in " ".join(found)  # the report never repeats the secret


def test_a_scan_over_nothing_captured_is_itself_a_finding(tmp_path: Path) -> None:
    assert leaks.scan(tmp_path, {"k3y-0123456789"}, []) == [
        "secrets were used but none of the service's own log records was captured"]
    assert leaks.scan(tmp_path, set(), []) == []


def test_a_served_subprocess_log_file_counts_as_the_capture(tmp_path: Path) -> None:
    """A session of subprocess-only tests (e.g. tests/api/test_serve_cli.py alone) has no
    in-process records; the service's own log file is the capture then, and is scanned."""
    (tmp_path / "serve.log").write_text("2026-12-07 INFO sqlembed: ready\n")
    assert leaks.scan(tmp_path, {"k3y-0123456789"}, []) == []
    (tmp_path / "other.log").write_text("nothing of the service's\n")
    (tmp_path / "serve.log").unlink()
    assert leaks.scan(tmp_path, {"k3y-0123456789"}, []) == [
        "secrets were used but none of the service's own log records was captured"]
