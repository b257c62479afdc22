"""Evaluation of a basis at fractional coordinates.

Never one complex exponential per (point, frequency): each point gets the per-axis powers
exp(2 pi i m x_j) for |m| <= the largest Miller index (3 (2m+1) exponentials), a plane wave
is the product of three table entries, and the routing is applied as a segmented sum over
the columns of each row (every column belongs to at most one row).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.sparse as sp

from .errors import InvalidCoordinatesError

__all__ = ["Precision", "PlaneWaveRouter", "check_fractional_coordinates", "realify"]

Precision = Literal["double", "single"]
_COMPLEX = {"double": np.complex128, "single": np.complex64}
_REAL = {"double": np.float64, "single": np.float32}
# Bytes of plane-wave workspace per chunk of points.
_CHUNK_BYTES = 1 << 19


def check_fractional_coordinates(frac: object) -> np.ndarray:
    """Validate and return fractional coordinates as a (N, 3) float64 array."""
    try:
        x = np.asarray(frac, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinatesError(
            f"fractional coordinates must be numbers shaped (N, 3); could not convert: {exc}"
        ) from None
    if x.ndim != 2 or x.shape[1] != 3:
        hint = " (a single point needs shape (1, 3): use frac[None, :])" if x.shape == (3,) else ""
        raise InvalidCoordinatesError(f"fractional coordinates must have shape (N, 3), got {x.shape}{hint}")
    finite = np.isfinite(x)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise InvalidCoordinatesError(
            f"fractional coordinates must be finite; entry [{row}, {col}] is {x[row, col]} "
            f"({int((~finite).sum())} non-finite entries in all)"
        )
    return x


def _check_precision(precision: str) -> str:
    if precision not in _COMPLEX:
        raise InvalidCoordinatesError(f"precision must be one of {tuple(_COMPLEX)}, got {precision!r}")
    return precision


@dataclass(frozen=True, eq=False)
class PlaneWaveRouter:
    """Precomputed plan for ``routing @ plane_waves(x)`` over the present columns.

    A plane wave exp(2 pi i (h x + k y + l z)) is T_x[h] T_y[k] T_z[l] with per-axis tables
    T.  The products T_x[h] T_y[k] are formed once per distinct (h, k) pair (about
    K^(2/3) of them), then each column needs one gather and one multiply.

    Attributes:
        bound: largest |Miller index| over the present columns; tables have 2*bound+1 entries.
        pair_axes: (2, n_pairs) int64, table indices (h + bound, k + bound) of each
            distinct in-plane pair.
        column_pair: (P,) int64, the pair of each present column.
        column_axial: (P,) int64, table index l + bound of each present column.
        routing: (n_rows, P) complex128 CSR, the routing restricted to present columns.
    """

    bound: int
    pair_axes: np.ndarray
    column_pair: np.ndarray
    column_axial: np.ndarray
    routing: sp.csr_matrix

    @classmethod
    def from_columns(
        cls, frequencies: np.ndarray, column_row: np.ndarray, column_value: np.ndarray, n_rows: int
    ) -> PlaneWaveRouter:
        present = np.flatnonzero(column_row >= 0)
        bound = int(np.abs(frequencies[present]).max(initial=0))
        index = frequencies[present] + bound
        span = 2 * bound + 1
        pairs, column_pair = np.unique(index[:, 0] * span + index[:, 1], return_inverse=True)
        routing = sp.csr_matrix(
            (column_value[present], (column_row[present], np.arange(present.shape[0]))),
            shape=(int(n_rows), present.shape[0]),
        )
        return cls(
            bound=bound,
            pair_axes=np.stack([pairs // span, pairs % span]),
            column_pair=column_pair.ravel(),
            column_axial=index[:, 2].copy(),
            routing=routing,
        )

    @cached_property
    def _transposed_double(self) -> sp.csc_matrix:
        return self.routing.T.tocsc()

    @cached_property
    def _transposed_single(self) -> sp.csc_matrix:
        return self.routing.T.astype(np.complex64).tocsc()

    def _transposed_routing(self, precision: Precision) -> sp.csc_matrix:
        """(P, n_rows) routing^T in the working precision, so that waves @ it is the sum."""
        return self._transposed_double if precision == "double" else self._transposed_single

    def __call__(self, x: np.ndarray, precision: Precision = "double") -> np.ndarray:
        """(N, n_rows) complex: the routed plane waves at validated coordinates ``x``."""
        ctype = _COMPLEX[_check_precision(precision)]
        n_points, (n_rows, width) = x.shape[0], self.routing.shape
        out = np.zeros((n_points, n_rows), dtype=ctype)
        if n_rows == 0 or n_points == 0:
            return out
        routing_t = self._transposed_routing(precision)
        orders = np.arange(-self.bound, self.bound + 1, dtype=np.float64)
        # Small chunks keep the (chunk, P) workspace in cache, which matters more than
        # the per-chunk overhead.
        chunk = max(16, _CHUNK_BYTES // (width * np.dtype(ctype).itemsize))
        for start in range(0, n_points, chunk):
            xs = x[start : start + chunk]
            # Reduce into [0, 1) first so the phase keeps full precision for large |x|.
            xs = xs - np.floor(xs)
            tables = np.exp((2j * np.pi) * (xs[:, :, None] * orders)).astype(ctype)
            pairs = tables[:, 0, self.pair_axes[0]] * tables[:, 1, self.pair_axes[1]]
            waves = pairs[:, self.column_pair]
            waves *= tables[:, 2, self.column_axial]
            out[start : start + chunk] = waves @ routing_t
        return out


def realify(features: np.ndarray, real_source: np.ndarray, real_factor: np.ndarray) -> np.ndarray:
    """Real orthonormal features ``Re(real_factor * features[:, real_source])``."""
    factor = real_factor.astype(features.dtype)
    return (features[:, real_source] * factor).real
