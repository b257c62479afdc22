"""What one service process holds: its settings, the open store and rendered responses."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from basisdb import BasisStore, crystal_system

__all__ = ["ServiceState", "Rendered"]

Rendered = tuple[bytes, str, str | None]  # (body, media type, download file name)


class ServiceState:
    """The store is opened once per process, read-only, and shared by every request.

    It opens at startup (the app's lifespan) or, where an ASGI host skips the lifespan, on
    first use.
    """

    def __init__(self, settings):
        self.settings = settings
        self._store: BasisStore | None = None
        self._lock = threading.Lock()
        self._rendered: OrderedDict[tuple, Rendered] = OrderedDict()
        self._catalog: list[dict[str, Any]] | None = None

    @property
    def store(self) -> BasisStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = BasisStore.open(self.settings.store, progress=False)
        return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._rendered.clear()

    def rendered(self, key: tuple, render: Callable[[], Rendered]) -> Rendered:
        """A response body from the cache, or rendered now and cached (LRU)."""
        with self._lock:
            if key in self._rendered:
                self._rendered.move_to_end(key)
                return self._rendered[key]
        value = render()
        if self.settings.basis_cache_size:
            with self._lock:
                self._rendered[key] = value
                while len(self._rendered) > self.settings.basis_cache_size:
                    self._rendered.popitem(last=False)
        return value

    def cached(self, key: tuple) -> Rendered | None:
        with self._lock:
            return self._rendered.get(key)

    def catalog(self) -> list[dict[str, Any]]:
        """One summary per default setting in the store (computed once)."""
        if self._catalog is None:
            store = self.store
            entries = []
            for setting in store.settings():
                if not setting.is_default:
                    continue
                table = store.verification_table(hall=setting.hall_number)
                entries.append(
                    {
                        "number": setting.group,
                        "symbol": setting.international,
                        "hall_number": setting.hall_number,
                        "hall_symbol": setting.hall_symbol,
                        "crystal_system": crystal_system(setting.group),
                        "n_operations": setting.n_operations,
                        "basis_sizes": [
                            {"radius": float(r), "n_basis": int(n)} for r, n in zip(table["radius"], table["n_basis"])
                        ],
                    }
                )
            self._catalog = sorted(entries, key=lambda e: e["number"])
        return self._catalog
