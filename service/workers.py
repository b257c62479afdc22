"""Worker processes: one per heavy slot, started with the server, fed one request at a time,
and replaced when a request leaves it above its memory ceiling.

Work that holds Python's GIL for long runs here, never in the server process: parsing and
validating request bodies (pydantic), spglib's symmetry search (about 250 ms for 2,000 atoms)
and writing exports (h5py holds the GIL for about 0.2 s when it closes a file).  Each slot has
a process of its own (a ``ProcessPoolExecutor`` of one), so that replacing one never disturbs
the request another is running.

What comes back is bounded: the value the route bounded, or a :class:`Failure` whose message
is cut to a fixed size and whose problems are at most
:data:`~basisdb.service.validation.MAX_ISSUES`.  No traceback or exception of the client's
making crosses the boundary; a bug's traceback goes to the log instead.  After every request
the worker hands its free memory back to the system and reports what it still holds
(:func:`resident_bytes`); above the ceiling, the server replaces it.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import importlib
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from basisdb import BasisDBError, BasisStore, StoreError

from .cancellation import Cancellation, WorkCancelled
from .validation import MAX_ISSUES, InvalidRequest, issue

__all__ = ["Failure", "Outcome", "WorkerProcesses", "release_memory", "resident_bytes", "worker_store"]

logger = logging.getLogger("basisdb.service")

_MAX_DETAIL = 1000  # characters of an error message sent back
_MAX_TRACEBACK = 8000  # characters of a bug's traceback written to the log


# -- memory ------------------------------------------------------------------------------------


def _load_libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc
        return None


_LIBC = _load_libc()


def release_memory() -> None:
    """Collect garbage, then hand the allocator's free pages back to the system (glibc keeps
    them otherwise: a process that once parsed a large body would hold that memory for good)."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def resident_bytes() -> int:
    """This process's resident memory now (Linux); elsewhere its peak, an upper bound."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


# -- what crosses back -------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A request that failed in a worker, as the server answers it.

    Attributes:
        status: the HTTP status.
        detail: a message of at most ``_MAX_DETAIL`` characters, or the first problems of an
            invalid request.
        error_count: for a list of problems, how many the request has in all.
        headers: extra response headers (Retry-After).
        error_class: the basisdb error raised, re-raised in the server so that its handler
            answers (and marks the store unhealthy when it is a StoreError).
    """

    status: int
    detail: str | list[dict]
    error_count: int | None = None
    headers: dict[str, str] | None = None
    error_class: type[BasisDBError] | None = None

    def exception(self) -> Exception:
        if self.error_class is not None:
            try:
                return self.error_class(self.detail)
            except TypeError:  # a constructor with more arguments
                return BasisDBError(self.detail)
        if self.error_count is not None:
            return InvalidRequest(self.detail, self.error_count)  # type: ignore[arg-type]
        return HTTPException(self.status, self.detail, headers=self.headers)


@dataclass(frozen=True)
class Outcome:
    """What a worker sends back: the value, or the failure, or that the work was cancelled;
    and its resident memory once the request was over."""

    value: Any = None
    failure: Failure | None = None
    cancelled: bool = False
    resident_bytes: int = 0


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def failure_of(error: BaseException) -> Failure:
    """The bounded answer to an exception raised by a request's work."""
    from .errors import status_of  # the service's mapping of basisdb errors to statuses

    if isinstance(error, InvalidRequest):
        return Failure(422, error.issues[:MAX_ISSUES], error_count=error.count)
    if isinstance(error, HTTPException):
        detail = error.detail
        detail = _cut(detail) if isinstance(detail, str) else [issue(["body"], _cut(str(detail)), "invalid")]
        return Failure(error.status_code, detail, headers=dict(error.headers or {}) or None)
    if isinstance(error, BasisDBError):
        return Failure(status_of(error), _cut(str(error)), error_class=type(error))
    if isinstance(error, MemoryError):
        return Failure(
            503, "a worker ran out of memory on this request; retry, or ask for less", headers={"Retry-After": "1"}
        )
    text = "".join(traceback.format_exception(error))
    logger.error("a request failed in a worker process (a bug):\n%s", text[-_MAX_TRACEBACK:])
    return Failure(500, "internal error in a worker process; the server's log has the details")


# -- in the worker -----------------------------------------------------------------------------

# In a worker process: its slot's cancellation flag, shared with the server.
_FLAG: _SharedFlag | None = None


class _SharedFlag:
    """One slot's cancellation flag, in memory shared between the server and the workers."""

    def __init__(self, flags, index: int):
        self._flags, self._index = flags, index

    def set(self) -> None:
        self._flags[self._index] = 1

    def clear(self) -> None:
        self._flags[self._index] = 0

    def is_set(self) -> bool:
        return bool(self._flags[self._index])


def _start(flags, index: int, server: int, preload: tuple[str, ...]) -> None:
    global _FLAG
    _FLAG = _SharedFlag(flags, index)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     [worker %(process)d] %(message)s")
    threading.Thread(target=_exit_with_server, args=(server,), daemon=True).start()
    for module in preload:
        importlib.import_module(module)
    # What the imports made lives as long as the process: out of every garbage collection, so
    # that the one after each request (release_memory) takes microseconds, not 30 ms.
    gc.freeze()


def _exit_with_server(server: int) -> None:
    """A worker holds both ends of its task queue, so it would never notice a server killed
    without its shutdown (SIGKILL, the OOM killer): it would wait forever, an orphan.  (The
    server's pid comes from the server: it may be gone before this worker has started.)"""
    while os.getppid() == server:
        time.sleep(1.0)
    os._exit(0)


@functools.lru_cache(maxsize=1)
def worker_store(path: Path, fingerprint: str) -> BasisStore:
    """The server's store, as a worker opens it once: refused if the file on disk is no longer
    the one the server verified."""
    store = BasisStore.open(path, progress=False)
    if store.fingerprint != fingerprint:  # replaced on disk since the server opened it
        raise StoreError(f"the store file {path.name} was replaced on disk; restart the service to serve it")
    return store


def _ready() -> Outcome:
    """A task that only starts a worker process (and imports what it needs)."""
    return Outcome(resident_bytes=resident_bytes())


def _run(function: Callable[..., Any], deadline: float, args: tuple) -> Outcome:
    # CLOCK_MONOTONIC is system-wide on Linux, so the server's deadline holds here too.
    try:
        outcome = Outcome(value=function(Cancellation(deadline, _FLAG), *args))
    except WorkCancelled:
        outcome = Outcome(cancelled=True)
    except Exception as error:  # noqa: BLE001 - every failure is answered, bounded
        outcome = Outcome(failure=failure_of(error))
    release_memory()  # the request's objects are gone: give their pages back
    return Outcome(outcome.value, outcome.failure, outcome.cancelled, resident_bytes())


# -- in the server -----------------------------------------------------------------------------


class WorkerProcesses:
    """One worker process per heavy slot, each replaced when a request leaves it holding
    more than ``max_resident_bytes`` or when it dies.  Each imports the ``preload`` modules
    when it starts (those whose functions it will run)."""

    def __init__(self, slots: int, max_resident_bytes: int, preload: tuple[str, ...] = ()):
        import multiprocessing

        self.max_resident_bytes = max_resident_bytes
        self._preload = preload
        self._context = multiprocessing.get_context("spawn")  # fork is unsafe in a threaded server
        self._flags = self._context.RawArray("b", slots)
        self._executors: list[ProcessPoolExecutor | None] = [None] * slots
        self._lock = threading.Lock()
        self._generation = 0  # shutdowns so far: a worker retired before one is not restarted after it
        self.replaced = 0  # workers replaced since the start (for /v1/health and the tests)

    def flag(self, index: int) -> _SharedFlag:
        return _SharedFlag(self._flags, index)

    def start(self, timeout: float = 120) -> None:
        """Start every worker now, and wait until each has imported what it needs, rather than
        keep the first requests waiting for it."""
        started = [self._executor(index).submit(_ready) for index in range(len(self._executors))]
        for future in started:
            future.result(timeout=timeout)

    def submit(self, index: int, function: Callable[..., Any], deadline: float, args: tuple) -> Future:
        """``function(cancellation, *args)`` in slot ``index``'s worker: a future of an :class:`Outcome`."""
        self.flag(index).clear()
        try:
            future = self._executor(index).submit(_run, function, deadline, args)
        except BrokenProcessPool:  # the worker died since its last request: start a new one
            self._retire(index, "it had stopped")
            future = self._executor(index).submit(_run, function, deadline, args)
        future.add_done_callback(lambda done: self._settle(index, done))
        return future

    def _settle(self, index: int, future: Future) -> None:
        """Once a request is over: retire its worker if it died or holds too much memory."""
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            self._retire(index, "it stopped during a request")
        elif error is None and (held := future.result().resident_bytes) > self.max_resident_bytes:
            ceiling = self.max_resident_bytes / 2**20
            self._retire(index, f"it held {held / 2**20:.0f} MiB after a request (ceiling {ceiling:.0f} MiB)")

    def _retire(self, index: int, why: str) -> None:
        """The slot's next request goes to a new worker; the old one exits in the background
        (this runs in the executor's own thread, which must not wait for it)."""
        with self._lock:
            old, self._executors[index] = self._executors[index], None
        if old is not None:
            logger.warning("replacing the worker process of heavy slot %d: %s", index, why)
            self.replaced += 1
            threading.Thread(target=self._restart, args=(old, index, self._generation), daemon=True).start()

    def _restart(self, old: ProcessPoolExecutor, index: int, generation: int) -> None:
        old.shutdown(wait=True, cancel_futures=True)  # idle: it exits at once, and its memory is back
        if generation == self._generation:  # not shut down meanwhile
            self._executor(index).submit(_ready)  # start the next one now, not on the next request

    def _executor(self, index: int) -> ProcessPoolExecutor:
        with self._lock:
            if self._executors[index] is None:
                self._executors[index] = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=self._context,
                    initializer=_start,
                    initargs=(self._flags, index, os.getpid(), self._preload),
                )
            return self._executors[index]

    def shutdown(self) -> None:
        """End every worker; running work was cancelled by the caller and stops at its next
        check (a later request starts new workers: an application may be started again)."""
        with self._lock:
            executors, self._executors = self._executors, [None] * len(self._executors)
            self._generation += 1
        for index, executor in enumerate(executors):
            if executor is not None:
                self.flag(index).set()
                executor.shutdown(wait=True, cancel_futures=True)
