"""Bounded work: a few heavy requests at a time, each with a deadline, stopped when the client
leaves.

Heavy work (encoding, rendering) runs in a small thread pool of its own, never on the event
loop, so that /v1/health and cached lookups stay fast while it runs.  Work that holds the GIL
for long (parsing and validating a body, spglib's symmetry search, writing an export with h5py:
a thread would stall the event loop for as long) runs in the slot's worker process instead
(:meth:`HeavyWork.run_in_process`, :mod:`basisdb.service.workers`).  A request that finds every
slot taken gets 503 with Retry-After at once.  The work checks a :class:`Cancellation` between
its steps and chunks; the slot is freed only when the work has really stopped, so a client that
leaves early cannot pile up work behind the limit.  Every request, answer included, also runs
under a deadline (:class:`DeadlineMiddleware`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import anyio
from fastapi import HTTPException, Request
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .cancellation import Cancellation, WorkCancelled
from .workers import Outcome, WorkerProcesses, release_memory, resident_bytes

__all__ = [
    "Lease",
    "HeavyWork",
    "LeasedStreamingResponse",
    "DeadlineMiddleware",
    "busy",
]

T = TypeVar("T")

# Growth of the server's resident memory, since it was last released, that makes the end of a
# heavy request release it (bytes).
RELEASE_ABOVE = 32 * 1024 * 1024


def busy(detail: str, retry_after: float = 1.0) -> HTTPException:
    """A deliberate 503: the service is fine, the client should come back."""
    return HTTPException(503, detail, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class Lease:
    """One heavy slot.  It is held by the computing thread and by the answer that streams the
    result, and freed when both are done: a client that leaves or a deadline that passes
    frees it only once the thread has really stopped."""

    def __init__(self, free: Callable[[], None], index: int):
        self._free = free
        self.index = index  # which slot: 0 to slots - 1
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
            self._free(self.index)


class HeavyWork:
    """At most ``slots`` heavy requests at once per server process, each computing under
    ``timeout`` seconds, in threads and in one worker process per slot (each replaced when a
    request leaves it holding more than ``max_worker_bytes``; each imports ``preload``)."""

    def __init__(self, slots: int, timeout: float, max_worker_bytes: int, preload: tuple[str, ...] = ()):
        self.slots = slots
        self.timeout = timeout
        self.workers = WorkerProcesses(slots, max_worker_bytes, preload)
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._free_slots = list(range(slots))
        self._cancellations: set[Cancellation] = set()
        self._settled = resident_bytes()  # this process's memory when last released

    @property
    def running(self) -> int:
        return self.slots - len(self._free_slots)

    def lease(self) -> Lease:
        """A slot, or 503 with Retry-After when all are taken."""
        with self._lock:
            if not self._free_slots:
                raise busy(f"{self.slots} heavy requests are already running in this process; retry shortly")
            index = self._free_slots.pop()
        return Lease(self._free, index)

    def _free(self, index: int) -> None:
        with self._lock:
            self._free_slots.append(index)
            idle = len(self._free_slots) == self.slots
            threads = self._threads
        # What the requests held goes back to the system, once it is worth a garbage collection
        # (a few milliseconds: not after every small request).
        if idle and threads is not None and resident_bytes() > self._settled + RELEASE_ABOVE:
            try:
                threads.submit(self._release)
            except RuntimeError:  # shut down meanwhile
                pass

    def _release(self) -> None:
        release_memory()
        self._settled = resident_bytes()

    def start_processes(self) -> None:
        """Start the worker processes now (and wait for them) rather than on the first request
        that needs one."""
        self.workers.start()
        self._settled = resident_bytes()

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="basisdb-heavy")
        return self._threads

    async def run(self, request: Request, function: Callable[[Cancellation], T], lease: Lease) -> T:
        """``function(cancellation)`` in the heavy thread pool under ``lease``: 503 when the
        deadline passes; :class:`WorkCancelled` when the client disconnects."""
        cancellation = Cancellation(time.monotonic() + self.timeout)
        with self._lock:
            future: Future = self._thread_pool().submit(function, cancellation)
            self._cancellations.add(cancellation)
        return await self._wait(request, future, cancellation, lease)

    async def run_in_process(self, request: Request, function: Callable[..., T], lease: Lease, *args: Any) -> T:
        """``function(cancellation, *args)`` in the slot's worker process, as :meth:`run` does
        in a thread; ``function`` and ``args`` must pickle, and the value it returns must be
        bounded.  A failure in the worker is raised here as the exception the server answers."""
        cancellation = Cancellation(time.monotonic() + self.timeout, self.workers.flag(lease.index))
        with self._lock:
            future = self.workers.submit(lease.index, function, cancellation.deadline, args)
            self._cancellations.add(cancellation)
        outcome: Outcome = await self._wait(request, future, cancellation, lease)
        if outcome.cancelled:
            raise busy(f"the request needed more than {self.timeout:g} s; ask for less")
        if outcome.failure is not None:
            raise outcome.failure.exception()
        return outcome.value

    async def _wait(self, request: Request, future: Future, cancellation: Cancellation, lease: Lease) -> Any:
        def finished(_: Future) -> None:  # once the work has really stopped
            with self._lock:
                self._cancellations.discard(cancellation)
            lease.drop()

        lease.hold()  # by the work, until finished() (which runs at once if it is already done)
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
                    except BrokenProcessPool:  # the worker is replaced for the next request
                        raise busy("a worker process stopped unexpectedly; retry") from None
                if cancellation.cancelled:
                    raise busy(f"the request needed more than {self.timeout:g} s; ask for less")
                if await request.is_disconnected():
                    raise WorkCancelled()  # nobody to answer
        finally:
            cancellation.cancel()  # a no-op once the work is done

    def shutdown(self) -> None:
        """Stop every running computation at its next check, wait for the threads (each stops
        within a check's interval) and end the worker processes (a later request starts new
        ones: an application may be started again)."""
        with self._lock:
            for cancellation in self._cancellations:
                cancellation.cancel()
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=True, cancel_futures=True)
        self.workers.shutdown()


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
            except (WorkCancelled, ClientDisconnect):
                return  # the client left (or was cut off for sending too slowly): nobody to answer
        if scope_deadline.cancelled_caught:
            if started:
                return  # an incomplete answer: the server closes the connection
            body = f'{{"detail":"the request took longer than {self.seconds:g} s"}}'.encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
