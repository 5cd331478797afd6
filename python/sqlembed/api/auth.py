"""API keys (contract A6): ``api-key``, ``Authorization: Bearer``, a header named ``Bearer``,
or an ``api-key`` query parameter (HTTPEndpointQueryString credentials)."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from pathlib import Path

from aiohttp import web

from sqlembed.api.errors import Handler
from sqlembed.errors import Unauthorized

log = logging.getLogger(__name__)


class KeyRing:
    """The accepted keys: fixed ones from settings plus a keys file, re-read when it changes.

    Rotation without a restart: add the new key to the file, move clients over, remove the old
    key. The file is checked at most once a second (on requests) and at once on ``reload()``
    (SIGHUP). A file that cannot be read keeps the previous keys, so a bad edit never opens
    the service or locks everyone out.
    """

    def __init__(self, fixed: list[str], keys_file: Path | None = None, check_every_s: float = 1.0) -> None:
        self._fixed = [k.encode() for k in fixed]
        self._file = keys_file
        self._check_every = check_every_s
        self._from_file: list[bytes] = []
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        if keys_file is not None:
            self.reload(strict=True)

    @property
    def enabled(self) -> bool:
        return bool(self._fixed) or self._file is not None

    def reload(self, strict: bool = False) -> None:
        assert self._file is not None
        with self._lock:
            try:
                st = self._file.stat()
                lines = self._file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                if strict:
                    raise ValueError(f"SQLEMBED_API_KEYS_FILE {self._file} cannot be read: {exc.strerror}") from exc
                log.error("API keys file %s cannot be read (%s); keeping the previous keys", self._file, exc.strerror)
                return
            keys = [ln.strip().encode() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
            self._from_file = keys
            self._stamp = (st.st_mtime, st.st_size)
            self._checked = time.monotonic()
        log.info("API keys file loaded: %d key(s)", len(keys))

    def keys(self) -> list[bytes]:
        if self._file is not None and time.monotonic() - self._checked >= self._check_every:
            try:
                st = self._file.stat()
                changed = (st.st_mtime, st.st_size) != self._stamp
            except OSError:
                changed = True
            self._checked = time.monotonic()
            if changed:
                self.reload()
        return self._fixed + self._from_file


def presented_key(request: web.Request) -> str | None:
    h = request.headers
    if "api-key" in h:
        return h["api-key"].strip()
    auth = h.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if "Bearer" in h:  # [CEM]'s example credential {"Bearer": "KEY"} sends this header literally
        return h["Bearer"].strip()
    return request.query.get("api-key")


def key_matches(candidate: str, keys: list[bytes]) -> bool:
    c = candidate.encode()
    # Compare with every key, no early exit: timing must not tell which key is close.
    ok = False
    for k in keys:
        ok |= hmac.compare_digest(c, k)
    return ok


def make_auth_middleware(ring: KeyRing, open_routes: frozenset[str]) -> web.middleware:  # type: ignore[valid-type]
    """``open_routes``: the route templates served without a key (the route table's ``open`` flag,
    passed in by api/app.py); matched by template, so ``/ui/{asset}`` covers its files."""

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None or resource.canonical not in open_routes:
            key = presented_key(request)
            if key is None:
                raise Unauthorized("missing API key: send 'api-key: KEY' or 'Authorization: Bearer KEY'")
            if not key_matches(key, ring.keys()):
                raise Unauthorized("invalid API key")
        return await handler(request)

    return auth_middleware
