"""What the suite must never leak: secrets it used, and where they could have leaked to.

Servers started by tests register their API keys and database URLs here, in-process log records
and error bodies (status >= 400) are captured, and ``scan`` looks through all of it, plus every
*.log file under the session's temporary directory (subprocess servers), when the session ends
(tests/conftest.py: in every pytest-xdist worker, over what that worker ran).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from urllib.parse import urlsplit

SECRETS: set[str] = set()
CAPTURED: list[str] = []
_lock = threading.Lock()


def register(secret: str) -> None:
    # Very short strings would match by accident; tests use keys and passwords of 8+ characters.
    if len(secret) >= 8:
        SECRETS.add(secret)


def register_url(url: str) -> None:
    register(url)
    password = urlsplit(url).password
    if password:
        register(password)


def capture(text: str) -> None:
    with _lock:
        CAPTURED.append(text)


# HTTP client libraries the tests drive the service with: they log the URLs the tests built
# (a query-string key on purpose, contract A6). They are the caller's logs, not the service's.
CLIENT_LOGGERS = ("httpx", "httpcore", "urllib3", "openai", "ollama")


class CaptureHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in CLIENT_LOGGERS:
            return
        try:
            capture(self.format(record))
        except Exception:  # a handler must never break the code under test
            self.handleError(record)


def scan(root: Path, secrets: set[str] | None = None, captured: list[str] | None = None) -> list[str]:
    """Every place a registered secret shows up: captured log lines and error bodies, and the
    *.log files under ``root``. Where secrets were used, the capture itself is checked too (a
    scan over nothing proves nothing)."""
    secrets = SECRETS if secrets is None else secrets
    captured = CAPTURED if captured is None else captured
    if not secrets:
        return []
    found = [f"{s[:4]}... in a log line or error body: {text.replace(s, s[:4] + '...')[:200]}"
             for text in captured for s in secrets if s in text]
    # A served subprocess's log file counts as a capture (a session of such tests alone has no
    # in-process records), as long as it holds the service's own records.
    seen = any(" sqlembed." in t for t in captured)
    for path in (p for p in root.rglob("*.log") if p.is_file()):
        text = path.read_text(errors="replace")
        seen = seen or " sqlembed" in text
        found += [f"{s[:4]}... in {path.relative_to(root)}" for s in secrets if s in text]
    if not seen:
        found.insert(0, "secrets were used but none of the service's own log records was captured")
    return found
