"""The web page at `/` and the API docs, all served from the package: nothing from a CDN."""

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
# the page runs only its own files: no inline script or style, no other origin, no frames
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
               "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
# Swagger UI starts from an inline script and both style inline; nothing may leave the server
# (ReDoc's footer would fetch its logo from a CDN: the browser blocks it)
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "worker-src 'self' blob:; frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> FileResponse:
    """The web page (it finds its files and the API relative to its own address, so it
    works behind a path prefix)."""
    return FileResponse(WEB_DIR / "index.html", headers=PAGE_HEADERS)


@router.get("/docs")
def swagger_docs() -> HTMLResponse:
    """Swagger UI, from the package's copy."""
    return _docs_page(get_swagger_ui_html(
        openapi_url="openapi.json", title="memgpt-local API",
        swagger_js_url="docs-assets/swagger-ui-bundle.js",
        swagger_css_url="docs-assets/swagger-ui.css",
        swagger_favicon_url="docs-assets/favicon.png",
        swagger_ui_parameters={"validatorUrl": None}))


@router.get("/redoc")
def redoc_docs() -> HTMLResponse:
    """ReDoc, from the package's copy, with the browser's own fonts."""
    return _docs_page(get_redoc_html(openapi_url="openapi.json", title="memgpt-local API",
                                     redoc_js_url="docs-assets/redoc.standalone.js",
                                     redoc_favicon_url="docs-assets/favicon.png",
                                     with_google_fonts=False))


def _docs_page(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


def add_web(app: FastAPI) -> None:
    """The page, its files under /web, and the docs with their files under /docs-assets."""
    app.include_router(router)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
