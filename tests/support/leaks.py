"""What the suite must never leak: secrets it used, and where they could have leaked to.

Servers started by tests register their API keys and database URLs here, in-process log records
and error bodies (status >= 400) are captured, and tests/zz_leaks scans all of it, plus every
*.log file under the session's temporary directory (subprocess servers), at the end of the run.
"""

from __future__ import annotations

import logging
import threading
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
