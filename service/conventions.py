"""What every answer of the service has in common, whatever produced it: the outermost layer
of the application, outside even Starlette's error handling.

- ``HEAD`` is answered for every ``GET`` route, with the headers of ``GET`` (uvicorn sends no
  body for it);
- a redirect (Starlette's, from ``/v1/health/`` to ``/v1/health``) has a relative
  ``Location``: it never echoes the client's ``Host`` header;
- an escaped slash in a path segment (``/v1/groups/P2_1%2Fc``: a space-group symbol) stays in
  its segment, as U+2215, which the group parameters read as a slash (routing sees the
  decoded path, where ``%2F`` would have split the segment in two);
- every error has a JSON body of one schema (:class:`~basisdb.service.schemas.ErrorResponse`):
  a plain-text error from Starlette (413 "Content Too Large", 500 "Internal Server Error")
  becomes ``{"detail": <its text>}``.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HttpConventions"]

_MAX_PLAIN_ERROR = 1000  # bytes of a plain-text error body kept as the detail


class HttpConventions:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}  # a copy: uvicorn's own scope still says HEAD
        raw = scope.get("raw_path") or b""
        if b"%2f" in raw.lower():
            segments = raw.split(b"?", 1)[0].decode("latin-1").split("/")
            path = "/".join(unquote(segment).replace("/", "\u2215") for segment in segments)
            scope = {**scope, "path": path}
        start: Message | None = None  # an error's start, held until its body is known
        text = b""

        async def conventional_send(message: Message) -> None:
            nonlocal start, text
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if 300 <= status < 400:
                    headers = [(name, _relative(value) if name == b"location" else value) for name, value in headers]
                    message = {**message, "headers": headers}
                elif status >= 400 and not _is_json(headers):
                    start = {**message, "headers": headers}
                    return
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                text += message.get("body", b"")[: _MAX_PLAIN_ERROR - len(text)]
                if not message.get("more_body", False):
                    await _send_json_error(send, start, text)
            else:
                await send(message)

        await self.app(scope, receive, conventional_send)


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"content-type" and value.startswith(b"application/json") for name, value in headers)


def _relative(location: bytes) -> bytes:
    """``http://evil.example/v1/health?x=1`` -> ``/v1/health?x=1`` (one leading slash: ``//host``
    would name a host again)."""
    parts = urlsplit(location.decode("latin-1"))
    return urlunsplit(("", "", "/" + parts.path.lstrip("/"), parts.query, parts.fragment)).encode("latin-1")


async def _send_json_error(send: Send, start: Message, text: bytes) -> None:
    body = orjson.dumps({"detail": text.decode("utf-8", errors="replace").strip() or "error"})
    kept = [(name, value) for name, value in start["headers"] if name not in (b"content-type", b"content-length")]
    headers = [*kept, (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})
