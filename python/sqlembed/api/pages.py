"""``GET /ui`` (the operators' status page) and ``GET /docs`` (Swagger UI over ``/openapi.json``):
files from the package (api/static/) and from swagger-ui-bundle-v2, never from a CDN, so a
DBA's browser on a locked-down network needs only this service, and the Content-Security-Policy
sent here can hold the pages to it.

The pages hold no data: /ui reads /v1/status and /v1/jobs with the key the operator types, /docs
reads /openapi.json. Which of these routes need a key is the route table's ``open`` flag
(api/routes.py says why each is or is not).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).with_name("static")

# No inline script or style anywhere (the pages' scripts are files): 'self' is all they need.
# form-action, base-uri and frame-ancestors are not covered by default-src: form-action 'none'
# means that, should the script not run, the browser refuses to submit the key form (so the key
# never lands in a URL); frame-ancestors 'none' stops another site framing the Cancel button.
UI_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Swagger UI's stylesheet draws its icons as data: SVG images; everything else is 'self' (the
# document, and "Try it out" requests, which go to this service: the document names no server).
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}

UI_ASSETS = ("ui.js", "ui.css", "favicon.svg")
SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "index.css", "favicon-32x32.png", "favicon-16x16.png")
"""The files of the bundle the reference page loads; the rest (source maps, the standalone
preset with its URL bar that loads other documents) is not served."""


@cache
def _swagger_dir() -> Path:
    # Imported here: only the reference page needs it, and the import resolves the bundle's folder.
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def _file(path: Path, csp: str | None = None) -> web.FileResponse:
    headers = {"Content-Type": _TYPES[path.suffix], "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer",
               # Revalidate every time (ETag / Last-Modified answer 304): an upgrade's new page
               # and scripts are never mixed with the old ones from a cache.
               "Cache-Control": "no-cache"}
    if csp is not None:
        headers["Content-Security-Policy"] = csp
    return web.FileResponse(path, headers=headers)


def _asset(request: web.Request, names: tuple[str, ...]) -> str:
    name = request.match_info["asset"]
    if name not in names:  # a fixed list: no path from the URL ever reaches the file system
        raise web.HTTPNotFound()
    return name


async def ui(request: web.Request) -> web.StreamResponse:
    return _file(STATIC / "ui.html", UI_CSP)


async def ui_asset(request: web.Request) -> web.StreamResponse:
    return _file(STATIC / _asset(request, UI_ASSETS), UI_CSP)


async def docs(request: web.Request) -> web.StreamResponse:
    return _file(STATIC / "docs.html", DOCS_CSP)


async def docs_asset(request: web.Request) -> web.StreamResponse:
    if request.match_info["asset"] == "docs.js":
        return _file(STATIC / "docs.js", DOCS_CSP)
    return _file(_swagger_dir() / _asset(request, SWAGGER_ASSETS), DOCS_CSP)
