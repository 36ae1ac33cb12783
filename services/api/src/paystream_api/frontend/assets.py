"""Files the API serves to browsers, from this package's `static/` folder (no build step).

`static_route` serves `/static/<path>` with a content type from an allow-list and no directory
listing; `page()` answers an HTML file of `static/` with a page's security headers.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path, PurePosixPath

from aiohttp import web

from paystream.errors import NotFoundError
from paystream_api.frontend.security import PageKind, asset_headers, page_headers
from paystream_api.keys import SETTINGS

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@cache
def read_asset(relative: str) -> bytes:
    """The bytes of `static/<relative>` (cached: the files do not change while the process runs)."""
    return (STATIC_DIR / relative).read_bytes()


def asset_path(raw: str) -> str | None:
    """`raw` as a path inside `static/`, or None when it could leave it or names no servable file."""
    parts = PurePosixPath(raw).parts
    if not parts or any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    relative = "/".join(parts)
    path = STATIC_DIR / relative
    if path.suffix not in CONTENT_TYPES or not path.is_file():
        return None
    return relative


def asset_response(relative: str, body: bytes | None = None) -> web.Response:
    """`static/<relative>` (or `body`, served as that file would be)."""
    return web.Response(
        body=read_asset(relative) if body is None else body,
        content_type=CONTENT_TYPES[Path(relative).suffix].split(";")[0],
        charset="utf-8" if Path(relative).suffix in (".js", ".css", ".html") else None,
        headers=asset_headers(),
    )


async def static_file(request: web.Request) -> web.Response:
    relative = asset_path(request.match_info["path"])
    if relative is None or relative.endswith(".html"):
        raise NotFoundError("no such file", field="path")
    return asset_response(relative)


def page(request: web.Request, relative: str, kind: PageKind, body: bytes | None = None) -> web.Response:
    """The HTML file `static/<relative>` (or `body`, built from it) with the security headers of a
    page of `kind`."""
    response = asset_response(relative, body)
    response.headers.update(page_headers(kind, request.app[SETTINGS].notifier_public_url))
    return response


def setup_static(app: web.Application) -> None:
    app.router.add_get("/static/{path:.+}", static_file)
