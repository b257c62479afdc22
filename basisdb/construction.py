"""Exact, vectorized construction of the invariant basis of a setting.

Everything that identifies a frequency or an operation is integer arithmetic: images
R^T h are integer vectors looked up in a dense index table, and phases h.t are integers
modulo 24 (translations are kept in units of 1/24).  The work is a handful of array
operations over the (operation, frequency) grid; there is no Python loop over
frequencies or operations.
"""

from __future__ import annotations

import numpy as np

from .basis import Basis
from .errors import ConstructionError
from .frequencies import FrequencyIndex, frequency_set, max_norm, quadratic_form
from .settings import TRANSLATION_DENOMINATOR, Setting, get_setting

__all__ = ["build_basis", "build_basis_for_setting"]


def build_basis(group: int | str | None = None, *, hall: int | None = None, radius: float) -> Basis:
    """Compute the invariant basis of a setting at truncation radius ``radius``.

    Pass ``group`` (ITA number 1-230 or a symbol such as ``"Fd-3m"``) for its default setting, or ``hall`` (1-530) for a
    specific one.  This is what the store caches.

    >>> b = build_basis(group=225, radius=2)
    >>> b.hall_number, b.n_frequencies, b.n_basis
    (523, 32, 2)
    """
    setting = get_setting(group, hall=hall)
    max_norm(radius)  # validates the radius before any work
    return build_basis_for_setting(setting, radius)


def build_basis_for_setting(setting: Setting, radius: float) -> Basis:
    """:func:`build_basis` for a :class:`~basisdb.settings.Setting` already in hand."""
    frequencies = frequency_set(setting.metric, radius)
    _check_metric_invariance(setting)
    n_freq = frequencies.shape[0]
    index = np.arange(n_freq)

    index_of = FrequencyIndex(frequencies)
    # The image R^T h, as a row vector h R, has table key (h R) . strides = h . (R strides).
    key_weights = np.einsum("oij,j->oi", setting.rotations.astype(np.int64), index_of.strides)
    images = index_of.table[frequencies @ key_weights.T + index_of.offset].T  # (n_ops, K)
    if (images < 0).any():
        raise ConstructionError(f"{setting.hall_symbol}: an orbit leaves the frequency set")
    phases = (setting.translations @ frequencies.T) % TRANSLATION_DENOMINATOR  # (n_ops, K)

    # Absent: some operation fixes h with a nontrivial phase.
    absent = ((images == index) & (phases != 0)).any(axis=0)
    representative = images.min(axis=0)  # first member of each orbit in (q, h, k, l) order
    if (absent != absent[representative]).any():
        raise ConstructionError(f"{setting.hall_symbol}: absence is not constant on an orbit")
    is_row = (representative == index) & ~absent
    row_of_rep = np.cumsum(is_row) - 1
    column_row = np.where(absent, -1, row_of_rep[representative]).astype(np.int32)

    # Coefficient phase of R^T h_O relative to h_O is h_O . t.  Scatter it from the
    # representatives, then check that every operation agreed (an orbit is consistent
    # exactly when it is not absent).
    reps = index[is_row]
    column_phase = np.zeros(n_freq, dtype=np.int64)
    column_phase[images[:, reps]] = phases[:, reps]
    if (column_phase[images[:, reps]] != phases[:, reps]).any():
        raise ConstructionError(f"{setting.hall_symbol}: inconsistent phases on an orbit")

    orbit_sizes = np.bincount(column_row[~absent], minlength=reps.shape[0]).astype(np.int32)
    present = ~absent
    column_value = np.zeros(n_freq, dtype=np.complex128)
    column_value[present] = np.exp((2j * np.pi / TRANSLATION_DENOMINATOR) * column_phase[present]) / np.sqrt(
        orbit_sizes[column_row[present]]
    )

    real_partner, real_factor = _real_pairing(frequencies, index_of, column_row, column_phase, reps)
    return Basis(
        setting=setting,
        radius=float(radius),
        frequencies=frequencies,
        column_row=column_row,
        column_phase=column_phase.astype(np.int8),
        column_value=column_value,
        orbit_sizes=orbit_sizes,
        real_partner=real_partner,
        real_factor=real_factor,
    )


def _real_pairing(frequencies, index_of, column_row, column_phase, reps):
    """Partner row of each orbit's conjugate and the factor of its real basis function.

    For a self-conjugate orbit with exp(2 pi i n/24) the relative phase of -h_O, the
    function exp(-pi i n/24) e_O is real.  A pair (O, -O) gives sqrt(2) Re e_O in the row
    of O and sqrt(2) Im e_O = Re(-i sqrt(2) e_O) in the row of -O.
    """
    negated = index_of(-frequencies[reps])
    partner = column_row[negated].astype(np.int32)
    rows = np.arange(reps.shape[0])
    if (partner < 0).any() or (partner[partner] != rows).any():
        raise ConstructionError("conjugate orbits do not pair up")
    self_conjugate = partner == rows
    factor = np.where(partner > rows, np.sqrt(2.0), -1j * np.sqrt(2.0)).astype(np.complex128)
    turns_48 = (-column_phase[negated[self_conjugate]]) % (2 * TRANSLATION_DENOMINATOR)
    factor[self_conjugate] = np.exp((2j * np.pi / (2 * TRANSLATION_DENOMINATOR)) * turns_48)
    return partner, factor


def _check_metric_invariance(setting: Setting) -> None:
    """The truncation form must be invariant under h -> R^T h, or orbits would be cut."""
    probe = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]])
    images = np.einsum("nj,oji->oni", probe, setting.rotations.astype(np.int64))
    if (quadratic_form(images, setting.metric) != quadratic_form(probe, setting.metric)).any():
        raise ConstructionError(
            f"the {setting.metric} form is not invariant under Hall setting "
            f"{setting.hall_number} ({setting.hall_symbol})"
        )
