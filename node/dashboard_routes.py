"""The public dashboard: ``GET /`` and its static files, served by the node itself.

The page (``node/static/index.html``, ``app.js``, ``style.css``) reads only the
public JSON API (``/v1/...``) and needs nothing from the internet: no CDN, no
framework, no build step, so it works on a closed network. Only the files
shipped in ``node/static/`` are served, read once when the app is built::

    GET /                     index.html
    GET /static/<name>        app.js, style.css, ...   (404 for anything else)

The Content-Security-Policy allows scripts, styles and requests from this
origin only: the page renders event bodies (free text written by other
cities) and must never run anything they contain.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

#: Short-lived: a node upgrade should reach browsers within minutes; ETags make revalidation cheap.
STATIC_CACHE = "public, max-age=300"
INDEX_CACHE = "no-cache"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

DASHBOARD_FILES = web.AppKey("dashboard_files", dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_static(directory: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every servable file in ``directory`` (not its subfolders), by name."""
    files = {}
    for path in sorted(directory.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if not path.is_file() or content_type is None or path.name.startswith("."):
            continue
        body = path.read_bytes()
        files[path.name] = StaticFile(
            body=body, content_type=content_type, etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        )
    return files


def _respond(request: web.Request, file: StaticFile, cache: str) -> web.Response:
    headers = {"Cache-Control": cache, "ETag": file.etag, **SECURITY_HEADERS}
    if file.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=file.body, headers={**headers, "Content-Type": file.content_type})
    response.enable_compression()
    return response


async def index(request: web.Request) -> web.Response:
    return _respond(request, request.app[DASHBOARD_FILES]["index.html"], INDEX_CACHE)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    # Only the names loaded at start-up: no path from the request ever reaches the file system.
    file = request.app[DASHBOARD_FILES].get(name)
    if file is None:
        raise web.HTTPNotFound(text=f"no static file named {name[:60]!r}")
    return _respond(request, file, STATIC_CACHE)


def add_routes(app: web.Application) -> None:
    app[DASHBOARD_FILES] = load_static()
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
