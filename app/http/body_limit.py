"""Request bodies are read whole: one over REQUEST_BYTES is refused with 413 before it is.

Starlette has a body limit of its own, but it answers in plain text, without the limit; this
one answers like every other error of the API: `{"detail": "..."}`, naming the limit.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.limits import REQUEST_BYTES, kib

TOO_LARGE = (
    f"the request body is over the {kib(REQUEST_BYTES)} the API reads; send less, and link to "
    "documents for long texts"
)


class BodyLimit:
    """ASGI middleware: a declared length over the limit is answered at once; a body that
    turns out longer (sent in chunks) raises HTTPException(413) where the route reads it."""

    def __init__(self, app: ASGIApp, *, limit: int = REQUEST_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": TOO_LARGE}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, limited, send)
