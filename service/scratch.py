"""The temporary files of one server process, in a directory of their own.

Exports and npz answers are written to a temporary file and streamed from it.  Each file is
removed once its answer is sent or abandoned; the whole directory goes when the process shuts
down (SIGTERM included).  A process killed without its shutdown (SIGKILL, the OOM killer)
cannot remove anything, so every server removes, when it starts, the directories of servers
that are gone: each holds an exclusive lock on a file in its directory for as long as it lives,
and the system releases the lock when the process dies, however it dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["ScratchDirectory", "PREFIX"]

logger = logging.getLogger("basisdb.service")

PREFIX = "basisdb-service-"
_LOCK = ".owner"
# A directory without its lock file is only ever a server between creating the one and the
# other; after this many seconds it is a server that died in between.
_UNLOCKED_GRACE = 60.0


class ScratchDirectory:
    """``PREFIX*`` under ``parent`` (default: the system's temporary directory, $TMPDIR),
    owned by this process; stale ones of dead servers are removed first."""

    def __init__(self, parent: str | os.PathLike | None = None):
        self.parent = Path(parent or tempfile.gettempdir())
        removed = remove_stale(self.parent)
        if removed:
            logger.warning("removed %d temporary folder(s) of servers that were killed", removed)
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.parent))
        self._lock = open(self.path / _LOCK, "w")  # noqa: SIM115 - held for the life of the process
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def new_file(self, suffix: str) -> Path:
        """A new empty file in the directory; the caller removes it once its answer is done."""
        handle, name = tempfile.mkstemp(prefix="answer-", suffix=suffix, dir=self.path)
        os.close(handle)
        return Path(name)

    def new_directory(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="export-", dir=self.path))

    def close(self) -> None:
        """Remove the directory and everything left in it."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()


def remove_stale(parent: Path) -> int:
    """Remove the scratch directories under ``parent`` whose server is gone; their number."""
    removed = 0
    for directory in parent.glob(f"{PREFIX}*"):
        if directory.is_dir() and _abandoned(directory):
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    return removed


def _abandoned(directory: Path) -> bool:
    try:
        lock = open(directory / _LOCK)  # noqa: SIM115
    except FileNotFoundError:
        try:
            return time.time() - directory.stat().st_mtime > _UNLOCKED_GRACE
        except OSError:
            return False
    except OSError:  # another user's, or unreadable: not ours to judge
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its server lives
            return False
        return True
