"""What one service process holds: its settings, the open store, its health, rendered
answers and the heavy-work slots."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from basisdb import BasisStore, StoreError, crystal_system

from .answers import AnswerCache
from .limits import HeavyWork, busy
from .schemas import GroupSummary
from .scratch import ScratchDirectory

__all__ = ["ServiceState", "StoreHealth", "summary_fields"]

logger = logging.getLogger("basisdb.service")

_CATALOG = TypeAdapter(list[GroupSummary])

# How often (seconds) the store file's identity on disk is compared with the open one.
_FILE_CHECK_INTERVAL = 0.5


@dataclass
class StoreHealth:
    """Whether the store can be trusted: ``verification`` is "passed" or "skipped" (at
    start-up); ``problem`` is set, for good, once a read fails its checksum or the file is
    replaced on disk."""

    verification: str = "pending"
    problem: str | None = None


class ServiceState:
    """The store is opened once per process, read-only, and shared by every request.

    It opens at startup (the app's lifespan) or, where an ASGI host skips the lifespan, on
    first use.
    """

    def __init__(self, settings):
        self.settings = settings
        self.health = StoreHealth()
        # The workers run the encoding routes' parsing and standardization, and exports: imported
        # when they start.
        routes = (f"{__package__}.routers.encode", f"{__package__}.routers.export")
        self.heavy = HeavyWork(settings.max_heavy_requests, settings.request_timeout, settings.max_worker_bytes, routes)
        self._store: BasisStore | None = None
        self._file_identity: tuple | None = None
        self._next_file_check = 0.0
        self._lock = threading.Lock()
        self.answers = AnswerCache(settings.basis_cache_size, settings.cache_max_bytes)
        self._catalog: bytes | None = None
        self._scratch: ScratchDirectory | None = None

    @property
    def scratch(self) -> ScratchDirectory:
        """This process's folder of temporary files (made at start-up, which also removes
        those of killed servers)."""
        if self._scratch is None:
            with self._lock:
                if self._scratch is None:
                    self._scratch = ScratchDirectory()
        return self._scratch

    # -- the store -------------------------------------------------------------------------
    @property
    def store(self) -> BasisStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._open()
        return self._store

    def _open(self) -> BasisStore:
        store = BasisStore.open(self.settings.store, progress=False)
        self._file_identity = _identity(store.path)
        if self.settings.store_verified == store.fingerprint:
            self.health.verification = "passed"  # by `basisdb serve`, before its workers started
        elif self.settings.verify_store:
            began = time.perf_counter()
            failures = store.verify_checksums()
            if failures:
                store.close()
                raise StoreError(f"{store.path.name} failed verification: {failures[0]} (and {len(failures) - 1} more)")
            self.health.verification = "passed"
            logger.info("store %s verified in %.1f s", store.path.name, time.perf_counter() - began)
        else:
            self.health.verification = "skipped"
            logger.warning("store %s: checksum verification skipped at start-up (verify_store=false)", store.path.name)
        return store

    def usable_store(self) -> BasisStore:
        """The store, or 503 if it cannot be trusted (see :meth:`trusted`)."""
        if not self.trusted():
            raise busy(f"the store cannot be trusted: {self.health.problem}", retry_after=60)
        return self.store

    def trusted(self) -> bool:
        """False for good once a read failed its checksum or the store file was replaced on
        disk (checked at most every half second)."""
        store = self.store
        now = time.monotonic()
        if now >= self._next_file_check:
            self._next_file_check = now + _FILE_CHECK_INTERVAL
            if _identity(store.path) != self._file_identity:
                self.mark_unhealthy(
                    f"the store file {store.path.name} was replaced or removed on disk; restart the service to serve it"
                )
        return self.health.problem is None

    def mark_unhealthy(self, problem: str) -> None:
        if self.health.problem is None:
            logger.error("store marked unhealthy: %s", problem)
            self.health.problem = problem

    def public_message(self, message: str) -> str:
        """``message`` without the store's absolute path (only its file name)."""
        path = self._store.path if self._store is not None else self.settings.store
        if path is not None:
            message = message.replace(str(path), path.name).replace(str(path.parent) + os.sep, "")
        return message

    def close(self) -> None:
        self.heavy.shutdown()  # the work has stopped: nothing writes to the scratch folder now
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._scratch is not None:
                self._scratch.close()
                self._scratch = None
        self.answers.clear()

    def catalog(self) -> bytes:
        """The JSON list of one :class:`~basisdb.service.schemas.GroupSummary` per default setting in
        the store, by group: built as models (so checked against the schema) once."""
        if self._catalog is None:
            store = self.store
            entries = []
            for setting in store.settings():
                if setting.is_default:
                    table = store.verification_table(hall=setting.hall_number)
                    entries.append(GroupSummary(**summary_fields(setting, zip(table["radius"], table["n_basis"]))))
            self._catalog = _CATALOG.dump_json(sorted(entries, key=lambda entry: entry.number))
        return self._catalog


def summary_fields(setting, sizes: Iterable[tuple[float, int]]) -> dict[str, Any]:
    """The fields of a :class:`~basisdb.service.schemas.GroupSummary` of a :class:`basisdb.Setting`,
    with its number of basis functions at each ``(radius, n_basis)`` in ``sizes``."""
    return {
        "number": setting.group,
        "symbol": setting.international,
        "hall_number": setting.hall_number,
        "hall_symbol": setting.hall_symbol,
        "crystal_system": crystal_system(setting.group),
        "n_operations": setting.n_operations,
        "basis_sizes": [{"radius": float(radius), "n_basis": int(n_basis)} for radius, n_basis in sizes],
    }


def _identity(path) -> tuple | None:
    """What tells one file from its replacement: device, inode, size, modification time."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
