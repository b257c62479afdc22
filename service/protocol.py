"""uvicorn's httptools protocol with the limits a public server needs.

uvicorn bounds neither how long a client may take to send its headers or body, nor their
size, nor how many connections it may hold: a few thousand idle or trickling connections
exhaust a process.  :class:`GuardedHttpToolsProtocol` adds, per connection:

- a header timeout: the request line and headers must arrive within ``header_timeout``
  seconds of the connection opening or the previous answer (else 408, connection closed);
- a body timeout: the body must arrive within ``body_timeout`` seconds (else 408);
- a header size limit: request line and headers at most ``max_header_bytes`` (else 431);
- a connection cap: beyond ``max_connections`` open connections, new ones are closed at once.

The limits come from :class:`basisdb.service.config.ServiceSettings` (the environment that
``basisdb serve`` sets for its workers).  Use it with
``uvicorn basisdb.service.app:app --http basisdb.service.protocol:GuardedHttpToolsProtocol``.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import ServiceSettings

__all__ = ["GuardedHttpToolsProtocol"]


@lru_cache(maxsize=1)
def _limits() -> ServiceSettings:
    return ServiceSettings()


def _response(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._guard_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._refused = False
        if len(self.connections) >= _limits().max_connections:
            self._refused = True
            transport.abort()  # no answer: the client holds nothing
            return
        super().connection_made(transport)
        self._arm(_limits().header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if not self._refused and not self.transport.is_closing():
            super().send_400_response(msg)

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._arm(_limits().header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._arm(_limits().body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # Guards
    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > _limits().max_header_bytes:
            self._refuse(b"431 Request Header Fields Too Large")
            raise ValueError("request headers too large")  # stops the parser; uvicorn answers nothing more

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._guard_timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if getattr(self, "_guard_timer", None) is not None:
            self._guard_timer.cancel()
            self._guard_timer = None

    def _expired(self) -> None:
        self._guard_timer = None
        self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes) -> None:
        """Answer ``status`` unless an answer has begun, then close the connection."""
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_response(status))
        if self.cycle is not None:
            self.cycle.disconnected = True  # the application sees the client gone
            self.cycle.message_event.set()
        self.transport.close()
