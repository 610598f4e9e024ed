"""The HTTP application of `charrec serve` (Starlette): the drawing page at `/`, its files under
`/static/`, and the JSON API: `POST /api/predict`, `GET /api/model`, `GET /health`.

Every failure a client can cause is answered as JSON `{"error": "..."}` with a 4xx status: a
body over the limit (413, refused from its Content-Length before it is read, or as soon as the
bytes read pass the limit), an empty body, a non-image or a decompression bomb (400). Anything
else is a bug: the client gets a 500 with one line, the traceback goes to the server's log, and
the server goes on serving. Predictions run on a small thread pool (one thread per core), so the
event loop keeps accepting requests while the model works. Models and predicting belong to
`charrec.serve.reader`; command-line options and starting the server to `charrec.cli.serve`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charrec.errors import ImageError
from charrec.serve.reader import Reader

MAX_BODY = 10 * 1024 * 1024  # bytes
FIELD = "image"  # the multipart field that carries the image
# The page's own files only: no other origin is asked for anything (a CDN would break offline).
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]

log = logging.getLogger("charrec.serve")


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _too_large(max_body: int) -> JSONResponse:
    return error(f"request body too large (the limit is {max_body} bytes)", 413)


class Guard:
    """ASGI middleware: the body limit (by Content-Length, then by counting what is read) and the
    security headers on every response."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await error("invalid Content-Length header", 400)(scope, receive,
                                                                  send_with_headers)
                return
            if int(declared) > self.max_body:
                await _too_large(self.max_body)(scope, receive, send_with_headers)
                return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        await self.app(scope, counted_receive, send_with_headers)


def create_app(reader: Reader, max_body: int = MAX_BODY, threads: int | None = None
               ) -> Starlette:
    """The application answering with `reader` (a loaded model); bodies over `max_body` bytes
    get 413; `threads` predictions at once (default: one per core)."""
    pool = ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1,
                              thread_name_prefix="charrec-predict")
    max_top_k = len(reader.classes)

    async def predict(request: Request) -> Response:
        top_k = _top_k(request.query_params.get("top_k", "1"), max_top_k)
        data, name = await _image_bytes(request)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(pool, reader.read, data, top_k, name)
        return JSONResponse(answer)

    async def model(request: Request) -> Response:
        return JSONResponse(reader.describe())

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def page(request: Request) -> Response:
        html = resources.files("charrec.serve").joinpath("static", "index.html").read_bytes()
        return Response(html, media_type="text/html; charset=utf-8")

    routes = [
        Route("/", page),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/model", model),
        Route("/health", health),
        Mount("/static", StaticFiles(packages=[("charrec.serve", "static")]), name="static"),
    ]
    handlers: dict[Any, Any] = {
        ImageError: lambda request, exc: error(str(exc), 400),
        BodyTooLarge: lambda request, exc: _too_large(max_body),
        HTTPException: lambda request, exc: error(str(exc.detail), exc.status_code),
        Exception: _internal_error,
    }
    app = Starlette(routes=routes, exception_handlers=handlers,
                    middleware=[Middleware(Guard, max_body=max_body)])
    app.state.reader = reader
    return app


def _top_k(value: str, most: int) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= most:
        raise HTTPException(400, f"top_k must be a whole number from 1 to {most}, not {value!r}")
    return int(value)


async def _image_bytes(request: Request) -> tuple[bytes, str]:
    """The image's bytes and a name for messages: the multipart field `image` when the body is
    multipart/form-data, else the raw body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        data = await request.body()
        if not data:
            raise HTTPException(400, f"empty request body: send an image file as the body or "
                                     f"as the multipart field {FIELD!r}")
        return data, "image"
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get(FIELD)
        if upload is None:
            raise HTTPException(400, f"no multipart field {FIELD!r}: send the image as "
                                     f"{FIELD}=@FILE")
        if isinstance(upload, str):
            raise HTTPException(400, f"the multipart field {FIELD!r} must be a file upload "
                                     f"(curl -F {FIELD}=@letter.png)")
        data = await upload.read()
        return data, os.path.basename(upload.filename or "") or "image"


def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
    return error(f"internal error ({type(exc).__name__}); the server log has the details", 500)
