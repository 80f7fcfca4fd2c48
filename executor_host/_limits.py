"""A limit on the size of request bodies, in front of both apps.

``BodyLimit`` refuses a request whose ``Content-Length`` is over the limit before
reading any of it, and counts a body without one (chunked) as its parts arrive,
refusing it as soon as the count passes the limit: the rest is never read, and the
app never sees a partial body. Either way the answer is 413 with a problem+json body
and ``Connection: close`` (the unread rest of the body would otherwise have to be read
and thrown away before the connection could serve another request).

The app gets the whole body as one ``http.request`` message, then the server's own
messages (a disconnect) as they come. A client that goes away before its body is
complete gets no answer, and the app is not called: no route runs on a partial body.

The default limit (``SUPERSTEP_MAX_BODY_BYTES``, 4 MiB) is daprd's default
``--max-body-size``: a larger body could not have come through the sidecar anyway.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from executor_host._problems import send_problem

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware: 413 for a request body of more than ``limit`` bytes (0: no limit)."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"a body limit is 0 (none) or more bytes, not {limit}")
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limit:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                await send_problem(
                    send,
                    400,
                    "Invalid Content-Length",
                    "Content-Length must be a number of bytes",
                    scope["path"],
                    headers=[(b"connection", b"close")],
                )
                return
            digits = declared.lstrip("0") or "0"
            if len(digits) > len(str(self.limit)) or int(digits) > self.limit:
                said = f"{digits} bytes" if len(digits) <= 20 else f"more than {self.limit} bytes"
                await self._too_large(send, scope, said)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(send, scope, f"more than {self.limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        whole: Message | None = {"type": "http.request", "body": body, "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, scope: Scope, size: str) -> None:
        await send_problem(
            send,
            413,
            "Request body too large",
            f"the request body has {size}; this app takes at most {self.limit} "
            "(SUPERSTEP_MAX_BODY_BYTES)",
            scope["path"],
            headers=[(b"connection", b"close")],
            limit=self.limit,
        )


def _content_length(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return str(value.decode("latin-1")).strip()
    return None
