"""Bounded work: a few heavy requests at a time, each with a deadline, stopped when the client
leaves.

Heavy work (parsing large bodies, standardizing structures, encoding, exports) runs in a
small thread pool of its own, never on the event loop, so that /v1/health and cached lookups
stay fast while it runs.  A request that finds every slot taken gets 503 with Retry-After at
once.  The work checks a :class:`Cancellation` between its steps and chunks; the slot is
freed only when the thread has really stopped, so a client that leaves early cannot pile up
work behind the limit.  Every request, answer included, also runs under a deadline
(:class:`DeadlineMiddleware`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import anyio
from fastapi import HTTPException, Request
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Cancellation", "WorkCancelled", "Lease", "HeavyWork", "LeasedStreamingResponse", "DeadlineMiddleware", "busy", "json_body_items"]

T = TypeVar("T")


class WorkCancelled(Exception):
    """Raised inside heavy work when its request is over (deadline, client gone, shutdown)."""


class Cancellation:
    """A flag and a deadline that heavy work checks between steps."""

    def __init__(self, deadline: float):
        self.deadline = deadline  # time.monotonic() value
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or time.monotonic() > self.deadline

    def check(self) -> None:
        if self.cancelled:
            raise WorkCancelled()


def busy(detail: str, retry_after: float = 1.0) -> HTTPException:
    """A deliberate 503: the service is fine, the client should come back."""
    return HTTPException(503, detail, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class Lease:
    """One heavy slot.  It is held by the computing thread and by the answer that streams the
    result, and freed when both are done: a client that leaves or a deadline that passes
    frees it only once the thread has really stopped."""

    def __init__(self, free: Callable[[], None]):
        self._free = free
        self._holders = 1  # the answer
        self._lock = threading.Lock()
        self._cleanups: list[Callable[[], None]] = []

    def on_release(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` (remove a temporary file, say) once nothing uses the slot."""
        self._cleanups.append(cleanup)

    def hold(self) -> None:
        with self._lock:
            self._holders += 1

    def drop(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            for cleanup in self._cleanups:
                cleanup()
            self._free()


class HeavyWork:
    """At most ``slots`` heavy requests at once per process, each computing under
    ``timeout`` seconds."""

    def __init__(self, slots: int, timeout: float):
        self.slots = slots
        self.timeout = timeout
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._running = 0
        self._cancellations: set[Cancellation] = set()

    @property
    def running(self) -> int:
        return self._running

    def lease(self) -> Lease:
        """A slot, or 503 with Retry-After when all are taken."""
        with self._lock:
            if self._running >= self.slots:
                raise busy(f"{self.slots} heavy requests are already running in this process; retry shortly")
            self._running += 1
        return Lease(self._free)

    def _free(self) -> None:
        with self._lock:
            self._running -= 1

    async def run(self, request: Request, function: Callable[[Cancellation], T], lease: Lease) -> T:
        """``function(cancellation)`` in the heavy pool under ``lease``: 503 when the
        deadline passes; :class:`WorkCancelled` when the client disconnects."""
        cancellation = Cancellation(time.monotonic() + self.timeout)
        lease.hold()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="basisdb-heavy")
            future: Future = self._executor.submit(function, cancellation)
            self._cancellations.add(cancellation)

        def finished(_: Future) -> None:  # in the worker thread, when it is really done
            with self._lock:
                self._cancellations.discard(cancellation)
            lease.drop()

        future.add_done_callback(finished)
        waiting = asyncio.wrap_future(future)
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=0.05)
                if done:
                    try:
                        return waiting.result()
                    except WorkCancelled:
                        raise busy(f"the request needed more than {self.timeout:g} s; ask for less") from None
                if cancellation.cancelled:
                    raise busy(f"the request needed more than {self.timeout:g} s; ask for less")
                if await request.is_disconnected():
                    raise WorkCancelled()  # nobody to answer
        finally:
            cancellation.cancel()  # a no-op once the work is done

    def shutdown(self) -> None:
        """Stop every running computation at its next check and release the threads (a later
        request starts new ones: an application may be started again)."""
        with self._lock:
            for cancellation in self._cancellations:
                cancellation.cancel()
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class LeasedStreamingResponse(StreamingResponse):
    """A streamed answer that frees its heavy slot when it is sent, cut off or abandoned."""

    def __init__(self, content, lease: Lease, status_code: int = 200, headers=None, media_type: str | None = None):
        super().__init__(content, status_code=status_code, headers=headers, media_type=media_type)
        self._lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._lease.drop()


class DeadlineMiddleware:
    """Every HTTP request, body and answer included, within ``seconds``: a client that sends
    or reads too slowly cannot hold a connection, a slot or memory for longer.  Past the
    deadline, a request that has not started its answer gets 503; one that has is cut off."""

    def __init__(self, app: ASGIApp, seconds: float):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with anyio.move_on_after(self.seconds) as scope_deadline:
            try:
                await self.app(scope, receive, tracking_send)
            except WorkCancelled:
                return  # the client left; there is nobody to answer
        if scope_deadline.cancelled_caught:
            if started:
                return  # an incomplete answer: the server closes the connection
            body = f'{{"detail":"the request took longer than {self.seconds:g} s"}}'.encode()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"retry-after", b"1"),
            ]})
            await send({"type": "http.response.body", "body": body})


def json_body_items(body: bytes) -> int:
    """An upper bound on the JSON arrays in a body (one per position triple), counted in C
    before anything is parsed."""
    return body.count(b"[")

