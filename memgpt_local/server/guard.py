"""What a request must show before any body is read: a Host this server answers (no DNS
rebinding), an origin allowed to change things (no cross-site request from a web page), the
key, and a body of the type its route takes."""

import hmac
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# readable without the key: they hold no data (the page asks for the key itself)
PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/redoc", "/openapi.json"})
PUBLIC_PREFIXES = ("/web/", "/docs-assets/")
DOCUMENTS_ROUTE = re.compile(r"/agents/[^/]+/documents")
IMPORT_ROUTES = re.compile(r"/agents/import(/af)?")


@dataclass(frozen=True)
class Access:
    """Who may use the server: its key (None: none), and the Host names and page origins it
    accepts beyond loopback."""

    api_key: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()


class Refusal(Exception):
    """A request refused before it reaches a route: its status and one line."""

    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, headers


def is_upload(method: str, path: str) -> bool:
    """Whether a route takes an upload (documents, an agent's export): the larger body limit."""
    return method == "POST" and bool(DOCUMENTS_ROUTE.fullmatch(path)
                                      or IMPORT_ROUTES.fullmatch(path))


def is_loopback_name(host: str) -> bool:
    """Whether a host name or address names this machine only."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Gate:
    """ASGI middleware: Host, then origin, then key, then body type; a refusal answers at once
    with a JSON error and the route never runs."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app = app
        self.access = access
        self.hosts = {host.lower() for host in access.allowed_hosts}
        self.origins = {_origin_key(origin) for origin in access.allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] == "http":
            try:
                self.check(scope["method"], scope["path"], Headers(scope=scope))
            except Refusal as refused:
                body = {"error": {"message": str(refused), "type": refused.kind},
                        "detail": str(refused)}
                response = JSONResponse(body, refused.status, refused.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check(self, method: str, path: str, headers: Headers) -> None:
        """Raise a Refusal for a request this server must not serve."""
        host = self._check_host(headers.get("host", ""))
        if method in CHANGING:
            self._check_origin(headers, host)
        if path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES):
            self._check_key(headers.get("authorization", ""))
        if method in WITH_BODY and _has_body(headers):
            _check_body_type(method, path, headers.get("content-type", ""))

    def _check_host(self, header: str) -> str:
        name = (urlsplit("//" + header).hostname or "") if header else ""
        if name and (is_loopback_name(name) or name in self.hosts):
            return header.lower()
        shown = header or "(none)"
        raise Refusal(400, f"Host {shown!r} is not a name this server answers to; start it "
                           f"with --allowed-host {name or 'NAME'} to serve that name.",
                      "invalid_host")

    def _check_origin(self, headers: Headers, host: str) -> None:
        origin = headers.get("origin") or headers.get("referer")
        if origin is None:
            return  # not a browser's cross-site request (curl, the openai package, the client)
        key = _origin_key(origin)
        if key in self.origins or (key != "null" and key.partition("://")[2] == host):
            return
        shown = _origin_key(origin)
        raise Refusal(403, f"Requests from the web page at {shown} may not change this server; "
                           f"start it with --allowed-origin {shown} to allow them.",
                      "forbidden_origin")

    def _check_key(self, authorization: str) -> None:
        key = self.access.api_key
        if key is None:
            return
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                 key.encode()):
            raise Refusal(401, "Missing or wrong API key: send 'Authorization: Bearer KEY'.",
                          "authentication_error", {"WWW-Authenticate": "Bearer"})


def _origin_key(origin: str) -> str:
    """An Origin (or a Referer's origin) as scheme://host[:port], lower case; "null" stays."""
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.netloc:
        return "null"
    return f"{parts.scheme}://{parts.netloc}".lower()


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _check_body_type(method: str, path: str, content_type: str) -> None:
    """JSON for every route; a form upload (only) for documents. Nothing a page can send
    without a CORS preflight (text/plain, a urlencoded form) reaches a JSON route."""
    kind = content_type.partition(";")[0].strip().lower()
    wanted = ("multipart/form-data" if DOCUMENTS_ROUTE.fullmatch(path) and method == "POST"
              else "application/json")
    if kind == wanted or (wanted == "application/json" and kind.endswith("+json")
                          and kind.startswith("application/")):
        return
    raise Refusal(415, f"This route takes {wanted}, not {kind or 'a body of no stated type'}.",
                  "unsupported_media_type")
