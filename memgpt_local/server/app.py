"""The FastAPI application: routers, the key check, body limits and JSON errors."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..engine import Engine
from ..errors import (
    AgentLeasedError,
    MemgptLocalError,
    ModelFileMissingError,
    ModelMemoryError,
    StoreUnavailableError,
    UnknownModelError,
)
from ..memory.agents import AgentExistsError, AgentNotFoundError
from .guard import Gate
from .host import AgentHost, ServerSettings
from .limits import BodyLimit
from .routes import agents, context, health, memory, messages, openai, report
from .routes.web import add_web
from .worker import ServerBusyError

STATUS_OF = {AgentNotFoundError: 404, AgentExistsError: 409, ServerBusyError: 503,
             UnknownModelError: 400, ModelFileMissingError: 503, AgentLeasedError: 409,
             StoreUnavailableError: 503, ModelMemoryError: 503}
TYPE_OF = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
           409: "conflict_error", 413: "request_too_large", 422: "invalid_request_error",
           503: "unavailable_error"}


def create_app(engine: Engine, settings: ServerSettings | None = None) -> FastAPI:
    """The server over one engine: every route runs its engine work on the host's worker;
    every request passes the gate (Host, origin, key, body type) before its body is read."""
    host = AgentHost(engine, settings or ServerSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        host.close()

    app = FastAPI(title="memgpt-local", version=version("memgpt-local"), lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # served from the package by routes.web
                  description="MemGPT agents on a local model: memory tiers, messages, and an "
                              "OpenAI-compatible chat endpoint where `model` names an agent.")
    app.state.host = host
    app.add_middleware(BodyLimit, body_bytes=host.settings.max_body_bytes,
                       upload_bytes=host.settings.max_upload_bytes)
    app.add_middleware(Gate, access=host.settings.access)  # added last: runs first
    _add_error_handlers(app)
    app.include_router(health.router)
    add_web(app)
    for module in (agents, context, memory, messages, openai, report):
        app.include_router(module.router)
    return app


def error_response(status: int, message: str, headers: dict | None = None,
                   kind: str | None = None) -> JSONResponse:
    """The JSON error every failure answers with (the shape OpenAI's clients read)."""
    body = {"error": {"message": message, "type": kind or TYPE_OF.get(status, "error")}}
    return JSONResponse(body, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(exc))

    @app.exception_handler(MemgptLocalError)
    async def library_error(request: Request, exc: MemgptLocalError) -> JSONResponse:
        status = next((code for kind, code in STATUS_OF.items() if isinstance(exc, kind)), 400)
        if isinstance(exc, ServerBusyError):
            return error_response(status, str(exc), {"Retry-After": str(exc.retry_after_s)},
                                  "server_busy")
        return error_response(status, str(exc))


def validation_message(exc: RequestValidationError) -> str:
    """Pydantic's errors as one line: where, and what is wrong."""
    parts = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return "Invalid request: the body is not valid JSON."
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "Invalid request: " + "; ".join(parts)
