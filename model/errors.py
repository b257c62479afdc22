"""Errors of the model package that more than one module raises."""

from __future__ import annotations

from basisdb import BasisDBError

__all__ = ["CheckpointError"]


class CheckpointError(BasisDBError, ValueError):
    """A checkpoint (or a saved layer) that is unreadable, of another kind, or incompatible
    with the store."""
