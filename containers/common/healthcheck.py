"""HEALTHCHECK: the service's /healthz over HTTP or HTTPS (self-signed allowed: this is loopback)."""

import os
import ssl
import sys
import urllib.request

port = os.environ.get("SQLEMBED_PORT", "8888")
scheme = "https" if os.environ.get("SQLEMBED_TLS_CERT") else "http"
ctx = ssl._create_unverified_context() if scheme == "https" else None  # noqa: S323 - loopback only
if os.environ.get("APP_MODE", "trigger") == "jupyter":
    url = f"http://127.0.0.1:{port}/api/status"
else:
    url = f"{scheme}://127.0.0.1:{port}/healthz"
try:
    with urllib.request.urlopen(url, timeout=5, context=ctx) as r:  # noqa: S310 - fixed loopback URL
        sys.exit(0 if r.status < 500 else 1)
except Exception:
    sys.exit(1)
