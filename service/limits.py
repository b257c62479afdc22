"""Bounded work: a few heavy requests at a time, each with a deadline, stopped when the client
leaves.

Heavy work (parsing large bodies, encoding, exports) runs in a small thread pool of its own,
never on the event loop, so that /v1/health and cached lookups stay fast while it runs.  Work
that holds the GIL for long in C code (spglib's symmetry search takes about 250 ms on 2,000
atoms, and a thread would stall the event loop for as long) runs in worker processes instead
(:meth:`HeavyWork.run_in_process`).  A request that finds every slot taken gets 503 with
Retry-After at once.  The work checks a :class:`Cancellation` between its steps and chunks; the
slot is freed only when the work has really stopped, so a client that leaves early cannot pile
up work behind the limit.  Every request, answer included, also runs under a deadline
(:class:`DeadlineMiddleware`).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import anyio
from fastapi import HTTPException, Request
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "Cancellation",
    "WorkCancelled",
    "Lease",
    "HeavyWork",
    "LeasedStreamingResponse",
    "DeadlineMiddleware",
    "busy",
    "json_body_items",
]

T = TypeVar("T")


class WorkCancelled(Exception):
    """Raised inside heavy work when its request is over (deadline, client gone, shutdown)."""


class _SharedFlag:
    """One slot's cancellation flag in memory shared with the worker processes."""

    def __init__(self, flags, index: int):
        self._flags, self._index = flags, index

    def set(self) -> None:
        self._flags[self._index] = 1

    def is_set(self) -> bool:
        return bool(self._flags[self._index])


# In a worker process: the flags of every slot, shared with the server (see _start_worker).
_WORKER_FLAGS = None


def _start_worker(flags, server: int) -> None:
    global _WORKER_FLAGS
    _WORKER_FLAGS = flags
    threading.Thread(target=_exit_with_server, args=(server,), daemon=True).start()


def _exit_with_server(server: int) -> None:
    """A worker holds both ends of its task queue, so it would never notice a server killed
    without its shutdown (SIGKILL, the OOM killer): it would wait forever, an orphan.  (The
    server's pid comes from the server: it may be gone before this worker has started.)"""
    while os.getppid() == server:
        time.sleep(1.0)
    os._exit(0)


def _in_worker(function: Callable[..., T], index: int, deadline: float, args: tuple) -> T:
    # CLOCK_MONOTONIC is system-wide on Linux, so the server's deadline holds here too.
    return function(Cancellation(deadline, _SharedFlag(_WORKER_FLAGS, index)), *args)


def _ready() -> None:
    """A task that only starts a worker process (and imports what it needs)."""


class Cancellation:
    """A flag and a deadline that heavy work checks between steps."""

    def __init__(self, deadline: float, flag: Any = None):
        self.deadline = deadline  # time.monotonic() value
        self._event = flag if flag is not None else threading.Event()

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
    ``timeout`` seconds, in threads or in as many worker processes."""

    def __init__(self, slots: int, timeout: float):
        self.slots = slots
        self.timeout = timeout
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        self._context = multiprocessing.get_context("spawn")  # fork is unsafe in a threaded server
        self._flags = self._context.RawArray("b", slots)  # one cancellation flag per slot
        self._lock = threading.Lock()
        self._free_slots = list(range(slots))
        self._cancellations: set[Cancellation] = set()

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

    def start_processes(self) -> None:
        """Start the worker processes now rather than on the first request that needs one."""
        with self._lock:
            executor = self._process_pool()
            for _ in range(self.slots):
                executor.submit(_ready)

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            self._processes = ProcessPoolExecutor(
                max_workers=self.slots,
                mp_context=self._context,
                initializer=_start_worker,
                initargs=(self._flags, os.getpid()),
            )
        return self._processes

    async def run(self, request: Request, function: Callable[[Cancellation], T], lease: Lease) -> T:
        """``function(cancellation)`` in the heavy thread pool under ``lease``: 503 when the
        deadline passes; :class:`WorkCancelled` when the client disconnects."""
        cancellation = Cancellation(time.monotonic() + self.timeout)
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="basisdb-heavy")
            future: Future = self._threads.submit(function, cancellation)
            self._cancellations.add(cancellation)
        return await self._wait(request, future, cancellation, lease)

    async def run_in_process(self, request: Request, function: Callable[..., T], lease: Lease, *args: Any) -> T:
        """``function(cancellation, *args)`` in a worker process, as :meth:`run` does in a
        thread; ``function``, ``args`` and the result must pickle."""
        flag = _SharedFlag(self._flags, lease.index)
        cancellation = Cancellation(time.monotonic() + self.timeout, flag)
        self._flags[lease.index] = 0
        with self._lock:
            try:
                future: Future = self._process_pool().submit(
                    _in_worker, function, lease.index, cancellation.deadline, args
                )
            except BrokenProcessPool:  # a worker died since the last request: start new ones
                self._processes = None
                future = self._process_pool().submit(_in_worker, function, lease.index, cancellation.deadline, args)
            self._cancellations.add(cancellation)
        return await self._wait(request, future, cancellation, lease)

    async def _wait(self, request: Request, future: Future, cancellation: Cancellation, lease: Lease) -> T:
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
                    except BrokenProcessPool:
                        with self._lock:
                            self._processes = None  # the next request starts new workers
                        raise busy("a worker process stopped unexpectedly; retry") from None
                if cancellation.cancelled:
                    raise busy(f"the request needed more than {self.timeout:g} s; ask for less")
                if await request.is_disconnected():
                    raise WorkCancelled()  # nobody to answer
        finally:
            cancellation.cancel()  # a no-op once the work is done

    def shutdown(self) -> None:
        """Stop every running computation at its next check, release the threads and end the
        worker processes (a later request starts new ones: an application may be started
        again)."""
        with self._lock:
            for cancellation in self._cancellations:
                cancellation.cancel()
            threads, processes = self._threads, self._processes
            self._threads = self._processes = None
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)
        if processes is not None:  # cancelled above: the workers stop at their next check
            processes.shutdown(wait=True, cancel_futures=True)


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


def json_body_items(body: bytes) -> int:
    """An upper bound on the JSON arrays in a body (one per position triple), counted in C
    before anything is parsed."""
    return body.count(b"[")
