"""What heavy work checks between its steps: a deadline, and a flag set when its request is
over (the client left, the deadline passed, the server shuts down).  In a worker process the
flag lives in memory shared with the server (:mod:`basisdb.service.workers`)."""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["Cancellation", "WorkCancelled"]


class WorkCancelled(Exception):
    """Raised inside heavy work when its request is over (deadline, client gone, shutdown)."""


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
