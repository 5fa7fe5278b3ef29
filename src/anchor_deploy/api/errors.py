"""Every error leaves the API as {"error": {"code", "message"}}: library errors are translated here."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anchor_deploy.model.errors import AnchorError

log = logging.getLogger(__name__)
_INTERNAL = json.dumps(
    {"error": {"code": "internal", "message": "internal error; the server log has the details"}}
).encode()
_HTTP_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def error_response(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AnchorError)
    async def anchor_error(_request: Request, exc: AnchorError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = (
            f"{where}: {first.get('msg', 'invalid input')}" if where else first.get("msg", "invalid input")
        )
        return error_response(422, "invalid_input", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The client left (or was dropped for stalling) before its body had all come: nobody reads this.
        return error_response(400, "client_disconnected", "the client disconnected during the request")

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal", "internal error; the server log has the details")


class UnexpectedErrors:
    """A bug answers a JSON 500 and the connection stays usable. (Left to Starlette's ServerErrorMiddleware,
    the exception is raised again after its 500, and uvicorn then drops the connection without a word: the
    client's next request on it is reset.) Installed inside the other middleware, around the routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # half an answer went out: only closing the connection can end it
            log.exception("unexpected error", exc_info=exc)
            length = str(len(_INTERNAL)).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", length)]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": _INTERNAL})
