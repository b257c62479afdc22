"""Truncated frequency sets: all nonzero Miller indices h with q(h) <= r^2.

The quadratic form q depends on the setting's axes (see :data:`basisdb.settings.Metric`):
``h^2 + hk + k^2 + l^2`` on hexagonal axes and ``h^2 + k^2 + l^2`` otherwise.  Each form is
invariant under its settings' action ``h -> R^T h``, so a truncation never cuts an orbit.

Frequencies are ordered by (q, h, k, l).  Because orbits never straddle a value of q, the
set for a smaller radius is a prefix of the set for a larger one, and so is its list of
orbits; the store relies on this to keep one array per setting for all radii.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InvalidRadiusError
from .settings import Metric

__all__ = ["METRICS", "FrequencyIndex", "quadratic_form", "max_norm", "frequency_set", "count_within"]

METRICS: tuple[Metric, ...] = ("euclidean", "hexagonal")

# Slack for radii such as sqrt(3) whose square is not exactly representable.
_RADIUS_SQUARED_SLACK = 1e-9


def quadratic_form(frequencies: np.ndarray, metric: Metric) -> np.ndarray:
    """q(h) for integer frequencies of shape (..., 3), exactly, as int64."""
    h = np.asarray(frequencies, dtype=np.int64)
    squares = (h * h).sum(axis=-1)
    if metric == "hexagonal":
        return squares + h[..., 0] * h[..., 1]
    if metric == "euclidean":
        return squares
    raise ValueError(f"unknown metric {metric!r}; allowed: {METRICS}")


def max_norm(radius: float) -> int:
    """The largest integer q(h) admitted by truncation radius ``radius``."""
    try:
        r = float(radius)
    except (TypeError, ValueError):
        raise InvalidRadiusError(f"radius must be a positive finite number, got {radius!r}") from None
    if not math.isfinite(r) or r <= 0:
        raise InvalidRadiusError(f"radius must be a positive finite number, got {radius!r}")
    if r > 64:
        raise InvalidRadiusError(f"radius {r} is above the supported maximum of 64 (about 1.1 million frequencies)")
    return math.floor(r * r + _RADIUS_SQUARED_SLACK)


def frequency_set(metric: Metric, radius: float) -> np.ndarray:
    """(K, 3) int64: every nonzero h with q(h) <= radius^2, ordered by (q, h, k, l).

    >>> frequency_set("euclidean", 1).tolist()
    [[-1, 0, 0], [0, -1, 0], [0, 0, -1], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    """
    q_max = max_norm(radius)
    # On hexagonal axes h^2+hk+k^2 >= 3/4 max(h,k)^2, so |h|,|k| <= sqrt(4 q_max / 3).
    in_plane = math.isqrt(4 * q_max // 3) + 1 if metric == "hexagonal" else math.isqrt(q_max)
    axial = math.isqrt(q_max)
    h, k, ell = np.meshgrid(
        np.arange(-in_plane, in_plane + 1),
        np.arange(-in_plane, in_plane + 1),
        np.arange(-axial, axial + 1),
        indexing="ij",
    )
    grid = np.stack([h.ravel(), k.ravel(), ell.ravel()], axis=1)
    q = quadratic_form(grid, metric)
    keep = (q <= q_max) & (q > 0)
    grid, q = grid[keep], q[keep]
    order = np.lexsort((grid[:, 2], grid[:, 1], grid[:, 0], q))
    return np.ascontiguousarray(grid[order])


def count_within(frequencies: np.ndarray, metric: Metric, radius: float) -> int:
    """How many leading rows of an ordered frequency set lie within ``radius``."""
    q = quadratic_form(frequencies, metric)
    return int(np.searchsorted(q, max_norm(radius), side="right"))


class FrequencyIndex:
    """Exact lookup from Miller indices to positions in a frequency set.

    A dense table over the bounding box, keyed by ``h . strides + offset``: integer
    arithmetic only.  Looking up many vectors is one matrix product and one gather.
    """

    def __init__(self, frequencies: np.ndarray):
        bound = int(np.abs(frequencies).max(initial=0))
        span = 2 * bound + 1
        self.bound = bound
        self.strides = np.array([span * span, span, 1], dtype=np.int64)
        self.offset = int(bound * self.strides.sum())
        self.table = np.full(span**3, -1, dtype=np.int64)
        self.table[self.key(frequencies)] = np.arange(frequencies.shape[0])

    def key(self, frequencies: np.ndarray) -> np.ndarray:
        """Table key of each row of an integer (..., 3) array inside the bounding box."""
        return frequencies @ self.strides + self.offset

    def __call__(self, frequencies: np.ndarray) -> np.ndarray:
        """Position of each row of ``frequencies`` (-1 where it is not in the set)."""
        return self.table[self.key(frequencies)]
