"""The dancers' web app: the static pages of `pika/web/`, and the QR code of a live page (segno).

Pages are plain HTML that fetch and subscribe by themselves, so they are served as files: read
once at start, kept in memory with an ETag, `no-cache` (revalidated on every load) and a strict
Content-Security-Policy (no inline script or style).  Assets under `/static/` are cached for an
hour; every page names them with `?v=<digest>`, so a new release is picked up at once.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

import segno
from quart import Blueprint, Response, current_app, request

from pika.http.status import STATUS_CACHE, render_status

__all__ = ["PAGE_CSP", "WEB_DIR", "pages_blueprint"]

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

PAGE_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
ASSET_CACHE = "public, max-age=3600"
PAGE_CACHE = "no-cache"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
    ".png": "image/png",
}
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]")
_STATIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STATIC_REF = re.compile(r'(["\'])/static/([A-Za-z0-9._-]+)\1')


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str


def pages_blueprint(web_dir: Path = WEB_DIR) -> Blueprint:
    """Routes for every page and asset under `web_dir` (read now: a missing file fails at start)."""
    assets = _load_assets(web_dir / "static")
    pages = {path.name: _load_page(path, assets) for path in sorted(web_dir.glob("*.html"))}
    bp = Blueprint("pages", __name__)

    def page(name: str, status: int = 200) -> Response:
        return _respond(pages[name], PAGE_CACHE, status, {"Content-Security-Policy": PAGE_CSP})

    def not_found() -> Response:
        return page("notfound.html", 404)

    @bp.get("/")
    @bp.get("/live")
    async def index() -> Response:
        return page("index.html")

    @bp.get("/live/<session_id>")
    async def player(session_id: str) -> Response:
        return page("player.html") if _SESSION_ID.fullmatch(session_id) else not_found()

    @bp.get("/recap/<session_id>")
    async def recap(session_id: str) -> Response:
        return page("recap.html") if _SESSION_ID.fullmatch(session_id) else not_found()

    @bp.get("/dj/register")
    @bp.get("/dj/login")
    async def auth() -> Response:
        return page("auth.html")

    @bp.get("/dj/console")
    async def console() -> Response:
        return page("console.html")

    @bp.get("/dj/<slug>")
    async def dj(slug: str) -> Response:
        return page("dj.html") if _SLUG.fullmatch(slug) else not_found()

    status_template = Template(pages["status.html"].body.decode("utf-8"))

    @bp.get("/status")
    async def status() -> Response:
        """200 even while the database is down: the page itself works, and says so."""
        return Response(
            await render_status(status_template),
            200,
            content_type=_TYPES[".html"],
            headers={"Cache-Control": STATUS_CACHE, "Content-Security-Policy": PAGE_CSP},
        )

    @bp.get("/my-likes")
    async def my_likes() -> Response:
        return page("likes.html")

    @bp.get("/static/<name>")
    async def static(name: str) -> Response:
        asset = assets.get(name) if _STATIC_NAME.fullmatch(name) else None
        if asset is None:
            return Response('{"error": "Not found"}', 404, content_type="application/json")
        return _respond(asset, ASSET_CACHE)

    @bp.get("/favicon.ico")
    async def favicon() -> Response:
        return _respond(assets["icon.svg"], ASSET_CACHE)

    @bp.get("/live/<session_id>/qr.svg")
    async def qr_code(session_id: str) -> Response:
        if not _SESSION_ID.fullmatch(session_id):
            return not_found()
        url = f"{_origin()}/live/{session_id}"
        body = qr_svg(url)
        file = _File(body, _TYPES[".svg"], _etag(body))
        return _respond(file, ASSET_CACHE, headers={"Content-Security-Policy": "default-src 'none'"})

    return bp


# -- helpers ------------------------------------------------------------------------------------


def qr_svg(text: str) -> bytes:
    """A QR code of `text` (level M, or higher when the symbol has room) as a scalable SVG: dark
    modules on white, a 4-module quiet zone, a viewBox and no fixed size, so it prints as large
    as the page makes it."""
    out = io.BytesIO()
    code = segno.make(text, error="m", micro=False)
    code.save(out, kind="svg", xmldecl=False, title=text, border=4, omitsize=True, light="#fff")
    return out.getvalue()


def _respond(file: _File, cache: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The file, or 304 when the browser already holds this version."""
    all_headers = {"Cache-Control": cache, "ETag": file.etag, **(headers or {})}
    if status == 200 and file.etag in _if_none_match():
        return Response(b"", 304, headers=all_headers)
    return Response(file.body, status, content_type=file.content_type, headers=all_headers)


def _if_none_match() -> set[str]:
    raw = request.headers.get("If-None-Match", "")
    return {part.strip().removeprefix("W/") for part in raw.split(",") if part.strip()}


def _load_assets(folder: Path) -> dict[str, _File]:
    assets = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and _STATIC_NAME.fullmatch(path.name):
            body = path.read_bytes()
            assets[path.name] = _File(body, _content_type(path), _etag(body))
    return assets


def _load_page(path: Path, assets: dict[str, _File]) -> _File:
    """The page with each `"/static/name"` it names turned into `"/static/name?v=<digest>"`."""

    def versioned(match: re.Match[str]) -> str:
        quote, name = match.group(1), match.group(2)
        asset = assets.get(name)
        if asset is None:
            raise FileNotFoundError(f"{path.name} names /static/{name}, which is not in {path.parent}/static")
        return f"{quote}/static/{name}?v={asset.etag.strip(chr(34))[:10]}{quote}"

    body = _STATIC_REF.sub(versioned, path.read_text("utf-8")).encode("utf-8")
    return _File(body, _TYPES[".html"], _etag(body))


def _content_type(path: Path) -> str:
    return _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _origin() -> str:
    """The origin dancers reach this server at: PIKA_PUBLIC_ORIGIN, else the request's own."""
    settings = current_app.extensions["pika"]["settings"]
    if settings.public_origin:
        return settings.public_origin.rstrip("/")
    return f"{request.scheme}://{request.host}"
