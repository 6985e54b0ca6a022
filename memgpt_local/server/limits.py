"""Request body limits: a JSON body, or an upload (documents, an agent's export)."""

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .guard import is_upload

DRAIN_BYTES = 256 * 1024**2  # read and dropped before a 413, so the client reads the answer


class BodyLimit:
    """Refuse a body over its limit with 413: at once when Content-Length says so, else as
    soon as the bytes read pass it."""

    def __init__(self, app: ASGIApp, body_bytes: int, upload_bytes: int):
        self.app = app
        self.body_bytes = body_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (self.upload_bytes if is_upload(scope["method"], scope["path"])
                 else self.body_bytes)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            if length.isdigit():
                await _drain(receive, min(int(length), DRAIN_BYTES))
            body = {"error": {"message": _too_large(limit), "type": "request_too_large"}}
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        await self.app(scope, _counted(receive, limit), send)


async def _drain(receive: Receive, up_to: int) -> None:
    """Read a refused body and drop it (up to a bound): a server that answers and closes
    while the client still sends makes the client see a reset instead of the 413."""
    drained = 0
    while drained < up_to:
        message = await receive()
        drained += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return


def _counted(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:  # a body sent without Content-Length (chunked)
            raise HTTPException(413, _too_large(limit))
        return message

    return counted


def _too_large(limit: int) -> str:
    return f"The request body is larger than this server's limit of {limit} bytes."
