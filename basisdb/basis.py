"""The symmetry-adapted Fourier basis of one setting at one truncation radius.

Normalization.  For a non-absent orbit O with representative h_O (its first member in the
(q, h, k, l) order) the complex basis function is

    e_O(x) = |O|^(-1/2) * sum_{k in O} exp(2 pi i phi_k) exp(2 pi i k.x),

where exp(2 pi i phi_k) = exp(2 pi i h_O.t) for any operation (R, t) with R^T h_O = k
(phi_{h_O} = 0).  This is the group average of exp(2 pi i h_O.x) scaled to unit norm:
the functions are orthonormal for <f, g> = integral over the unit cell of conj(f) g dx
(fractional coordinates, cell volume 1), so the routing matrix M satisfies M M^H = I.

The real basis has the same dimension and span.  A self-conjugate orbit (-O = O) gives
alpha_O e_O, with the unit phase alpha_O that makes it real; a pair (O, -O) gives
sqrt(2) Re e_O and sqrt(2) Im e_O in the rows of O and -O.  It is orthonormal too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from .checks import verification_figures
from .encoding import PlaneWaveRouter, Precision, check_fractional_coordinates, realify
from .errors import InvalidRadiusError
from .frequencies import FrequencyIndex, count_within
from .settings import Metric, Setting

__all__ = ["Basis"]


@dataclass(frozen=True, eq=False)
class Basis:
    """Invariant Fourier basis of one setting, truncated at ``radius``.

    Attributes:
        setting: the Hall setting whose operations built the basis; coordinates passed to
            :meth:`encode` must be fractional coordinates of its conventional cell.
        radius: truncation radius r (frequencies with q(h) <= r^2, see
            :mod:`basisdb.frequencies`).
        frequencies: (K, 3) int64 Miller indices in the conventional cell, ordered by
            (q, h, k, l).
        column_row: (K,) int32, the basis function (row) each frequency feeds, -1 for a
            systematically absent frequency.
        column_phase: (K,) int8, exact phase of each nonzero routing entry as a numerator
            over 24 (turns); 0 for absent frequencies.
        column_value: (K,) complex128, the routing entry of each column
            (exp(2 pi i phase/24) / sqrt(orbit size); 0 when absent).
        orbit_sizes: (n_basis,) int32, orbit size of each row.
        real_partner: (n_basis,) int32, row of the conjugate orbit -O (the row itself when
            the orbit is self-conjugate).
        real_factor: (n_basis,) complex128, real row i is
            Re(real_factor[i] * e_{min(i, real_partner[i])}).
        stored_verification: per-radius figures recorded in a store, or None when the basis
            was computed in memory (then :attr:`verification` computes them on first use).
    """

    setting: Setting
    radius: float
    frequencies: np.ndarray = field(repr=False)
    column_row: np.ndarray = field(repr=False)
    column_phase: np.ndarray = field(repr=False)
    column_value: np.ndarray = field(repr=False)
    orbit_sizes: np.ndarray = field(repr=False)
    real_partner: np.ndarray = field(repr=False)
    real_factor: np.ndarray = field(repr=False)
    stored_verification: dict[str, Any] | None = field(default=None, repr=False)

    # -- identity -------------------------------------------------------------------------
    @property
    def group(self) -> int:
        return self.setting.group

    @property
    def hall_number(self) -> int:
        return self.setting.hall_number

    @property
    def hall_symbol(self) -> str:
        return self.setting.hall_symbol

    @property
    def international(self) -> str:
        return self.setting.international

    @property
    def metric(self) -> Metric:
        return self.setting.metric

    # -- sizes ----------------------------------------------------------------------------
    @property
    def n_basis(self) -> int:
        return int(self.orbit_sizes.shape[0])

    @property
    def n_frequencies(self) -> int:
        return int(self.frequencies.shape[0])

    @property
    def absent(self) -> np.ndarray:
        """(K,) bool: systematically absent frequencies (zero columns of the routing)."""
        return self.column_row < 0

    @property
    def real_source(self) -> np.ndarray:
        """(n_basis,) int: the complex row each real row is taken from."""
        return np.minimum(np.arange(self.n_basis), self.real_partner)

    # -- matrices -------------------------------------------------------------------------
    @cached_property
    def routing(self) -> sp.csr_matrix:
        """(n_basis, K) complex128 CSR: plane waves -> invariant basis functions."""
        cols = np.flatnonzero(self.column_row >= 0)
        return sp.csr_matrix(
            (self.column_value[cols], (self.column_row[cols], cols)),
            shape=(self.n_basis, self.n_frequencies),
        )

    @cached_property
    def real_routing(self) -> sp.csr_matrix:
        """(n_basis, K) complex128 CSR whose rows are the real basis functions.

        Real row i = Re(c_i e_s) = (c_i e_s + conj(c_i e_s)) / 2, with s its source row;
        conj(e_s) lives on the negated frequencies.
        """
        cols = np.flatnonzero(self.column_row >= 0)
        source = self.column_row[cols]
        partner = self.real_partner[source]
        # Source row s feeds real row s unless it is the second of a pair, and feeds its
        # partner's real row when it is the first of a pair.
        feeds_self = partner >= source
        feeds_partner = partner > source
        rows = np.concatenate([source[feeds_self], partner[feeds_partner]])
        cols = np.concatenate([cols[feeds_self], cols[feeds_partner]])
        vals = self.column_value[cols] * self.real_factor[rows] / 2
        negation = FrequencyIndex(self.frequencies)(-self.frequencies)
        matrix = sp.coo_matrix(
            (
                np.concatenate([vals, np.conj(vals)]),
                (np.concatenate([rows, rows]), np.concatenate([cols, negation[cols]])),
            ),
            shape=(self.n_basis, self.n_frequencies),
        )
        return matrix.tocsr()

    @cached_property
    def _router(self) -> PlaneWaveRouter:
        return PlaneWaveRouter.from_columns(self.frequencies, self.column_row, self.column_value, self.n_basis)

    # -- evaluation -----------------------------------------------------------------------
    def encode(self, frac: Any, *, real: bool = False, precision: Precision = "double") -> np.ndarray:
        """Invariant features at fractional coordinates ``frac`` of this setting's cell.

        Args:
            frac: (N, 3) fractional coordinates (any real numbers; periodic).
            real: return the real orthonormal variant instead of the complex basis.
            precision: ``"double"`` (complex128 / float64) or ``"single"``
                (complex64 / float32, for ML pipelines).

        Returns:
            (N, n_basis) complex array ``routing @ exp(2 pi i H x)`` per point, or its real
            variant as a float array.
        """
        x = check_fractional_coordinates(frac)
        features = self._router(x, precision)
        if real:
            return realify(features, self.real_source, self.real_factor)
        return features

    # -- derived bases --------------------------------------------------------------------
    def truncate(self, radius: float) -> Basis:
        """The same setting's basis at a radius no larger than this one.

        Frequencies are ordered by q and rows by their first frequency, so the smaller
        basis is a prefix of rows and columns.
        """
        if float(radius) > self.radius:
            raise InvalidRadiusError(f"cannot truncate a basis of radius {self.radius} to the larger radius {radius}")
        n_freq = count_within(self.frequencies, self.metric, radius)
        n_rows = int(self.column_row[:n_freq].max(initial=-1)) + 1
        return Basis(
            setting=self.setting,
            radius=float(radius),
            frequencies=self.frequencies[:n_freq],
            column_row=self.column_row[:n_freq],
            column_phase=self.column_phase[:n_freq],
            column_value=self.column_value[:n_freq],
            orbit_sizes=self.orbit_sizes[:n_rows],
            real_partner=self.real_partner[:n_rows],
            real_factor=self.real_factor[:n_rows],
        )

    @cached_property
    def verification(self) -> dict[str, Any]:
        """Verification figures: stored at build time, or computed now for in-memory bases."""
        if self.stored_verification is not None:
            return dict(self.stored_verification)
        return verification_figures(self)
