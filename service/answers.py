"""Rendered answers kept in memory, and the ASGI layer that serves them ahead of the router.

A cached basis lookup is the service's hottest path, and FastAPI's routing, parameter
validation and dependency resolution cost several times the work of writing its bytes.  So
once a route has validated a request and rendered its answer, it remembers the request's raw
path and query string as another name of that answer (:meth:`AnswerCache.remember`).  The same
request again is answered by :class:`CachedAnswers` straight from memory, before routing.
Everything else, and every request while the store cannot be trusted, goes through the
application as usual, so the answers and errors of both paths are the same.

Both the answers and their names are bounded: answers in entries and in bytes, names in
entries and in length.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Rendered", "AnswerCache", "CachedAnswers", "answer_headers"]

Rendered = tuple[bytes, str, str | None]  # (body, media type, download file name)

# A request name longer than this (path plus query string, bytes) is never remembered.
MAX_NAME_BYTES = 512
# Names kept per cached answer, on average: a client may spell one request several ways.
NAMES_PER_ANSWER = 4
# Answers larger than this go through the application (and its deadline) even when cached,
# so that a client that does not read cannot hold a large body in a transport buffer.
MAX_DIRECT_BYTES = 1 << 20


def answer_headers(rendered: Rendered) -> list[tuple[bytes, bytes]]:
    body, media_type, filename = rendered
    headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    if filename:
        headers.append((b"content-disposition", f'attachment; filename="{filename}"'.encode()))
    return headers


class AnswerCache:
    """A least-recently-used map of rendered answers, bounded by ``max_entries`` and
    ``max_bytes`` (an answer above a quarter of ``max_bytes`` is never kept), and of the raw
    requests that name them."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._answers: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._names: OrderedDict[tuple[str, bytes], Hashable] = OrderedDict()
        self._bytes = 0

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self._names.clear()
            self._bytes = 0

    def get(self, key: Hashable) -> Rendered | None:
        return self._answers.get(key)  # a dict read is atomic; recency is kept by get_or_render()

    def get_or_render(self, key: Hashable, render: Callable[[], Rendered]) -> Rendered:
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        value = render()
        size = len(value[0])
        if self.max_entries and size <= self.max_bytes // 4:
            with self._lock:
                if key not in self._answers:
                    self._answers[key] = value
                    self._bytes += size
                while len(self._answers) > self.max_entries or self._bytes > self.max_bytes:
                    _, (body, _, _) = self._answers.popitem(last=False)
                    self._bytes -= len(body)
        return value

    def remember(self, path: str, query: bytes, key: Hashable) -> None:
        """Name the answer ``key`` (already validated and rendered) by the raw request."""
        if key not in self._answers or len(path) + len(query) > MAX_NAME_BYTES:
            return
        with self._lock:
            self._names[(path, query)] = key
            self._names.move_to_end((path, query))
            while len(self._names) > self.max_entries * NAMES_PER_ANSWER:
                self._names.popitem(last=False)

    def named(self, path: str, query: bytes) -> Rendered | None:
        """The answer a raw request was remembered for, if it is still kept."""
        key = self._names.get((path, query))
        return None if key is None else self._answers.get(key)


class CachedAnswers:
    """Answers a GET request that names a cached answer, if ``trusted()``; passes the rest on."""

    def __init__(self, app: ASGIApp, cache: AnswerCache, trusted: Callable[[], bool]):
        self.app = app
        self.cache = cache
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            rendered = self.cache.named(scope["path"], scope["query_string"])
            if rendered is not None and len(rendered[0]) <= MAX_DIRECT_BYTES and self.trusted():
                await send({"type": "http.response.start", "status": 200, "headers": answer_headers(rendered)})
                await send({"type": "http.response.body", "body": rendered[0]})
                return
        await self.app(scope, receive, send)
