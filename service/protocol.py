"""uvicorn's httptools protocol with the limits a public server needs.

uvicorn bounds neither how long a client may take to send its headers or body, nor their
size, nor how many connections it may hold: a few thousand idle or trickling connections
exhaust a process.  :class:`GuardedHttpToolsProtocol` adds, per connection:

- a header timeout: the request line and headers must arrive within ``header_timeout``
  seconds of the connection opening or the previous answer (else 408, connection closed);
- a body timeout: the body must arrive within ``body_timeout`` seconds (else 408);
- a header size limit: request line and headers at most ``max_header_bytes`` (else 431);
- a connection cap: beyond ``max_connections`` open connections, new ones are closed at once;
- a cap per client address: beyond ``max_client_connections`` from one address, new ones
  from that address are closed at once, so that one client cannot lock out the others.

Every answer it gives itself (400, 408, 431) has the service's JSON error body.

The limits come from :class:`basisdb.service.config.ServiceSettings` (the environment that
``basisdb serve`` sets for its workers).  Use it with
``uvicorn basisdb.service.app:app --http basisdb.service.protocol:GuardedHttpToolsProtocol``.

uvicorn has no public API for these limits, so this subclasses its httptools protocol and
uses some of its internals: ``pyproject.toml`` bounds uvicorn to the releases this was tested
with, and :func:`_check_uvicorn` refuses, at import, a uvicorn whose protocol lacks them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import lru_cache

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import ServiceSettings

__all__ = ["GuardedHttpToolsProtocol"]

# What of uvicorn's protocol this overrides and calls (it also reads the attributes its
# constructor sets: connections, cycle, loop, transport).
_USED_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "send_400_response",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_message_complete",
)


def _check_uvicorn() -> None:
    missing = [name for name in _USED_METHODS if not callable(getattr(HttpToolsProtocol, name, None))]
    if missing:
        raise ImportError(
            f"uvicorn {uvicorn.__version__}'s HttpToolsProtocol lacks {', '.join(missing)}, which the service's "
            "connection limits need; install the uvicorn release pyproject.toml names"
        )


_check_uvicorn()


@lru_cache(maxsize=1)
def _limits() -> ServiceSettings:
    return ServiceSettings()


def _response(status: bytes, detail: str) -> bytes:
    """A whole answer with the service's JSON error body, closing the connection."""
    body = orjson.dumps({"detail": detail})
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


# Open connections per client address in this process.
_CLIENTS: Counter[str] = Counter()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._guard_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._refused = False
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, tuple) and peer else None  # None on a Unix socket
        limits = _limits()
        crowded = self._client is not None and _CLIENTS[self._client] >= limits.max_client_connections
        if len(self.connections) >= limits.max_connections or crowded:
            self._refused = True
            transport.abort()  # no answer: the client holds nothing
            return
        if self._client is not None:
            _CLIENTS[self._client] += 1
        super().connection_made(transport)
        self._arm(limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        if self._client is not None:
            _CLIENTS[self._client] -= 1
            if not _CLIENTS[self._client]:
                del _CLIENTS[self._client]
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if not self._refused and not self.transport.is_closing():
            self.transport.write(_response(b"400 Bad Request", msg))
            self.transport.close()

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
            self._refuse(
                b"431 Request Header Fields Too Large",
                f"the request line and headers exceed {_limits().max_header_bytes} bytes",
            )
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
        self._refuse(b"408 Request Timeout", "the request did not arrive in time; the connection is closed")

    def _refuse(self, status: bytes, detail: str) -> None:
        """Answer ``status`` unless an answer has begun, then close the connection."""
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_response(status, detail))
        if self.cycle is not None:
            self.cycle.disconnected = True  # the application sees the client gone
            self.cycle.message_event.set()
        self.transport.close()
