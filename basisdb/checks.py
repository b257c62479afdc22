"""The invariance and orthogonality checks behind a basis's verification figures.

Every function measures; none decides.  The *verification figures* of a basis (its
``verification`` property, the ``verification`` table of a store) are what these checks
measure, and :data:`TOLERANCE` is the bound a build holds them to.

The figures are per row, so that one evaluation at the largest radius of a build gives the
figures of every smaller radius (rows and columns of a smaller radius are a prefix):
:func:`prefix_maximum` turns per-row errors into per-radius errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # only for annotations: Basis imports this module to measure itself
    from .basis import Basis

__all__ = [
    "DEFAULT_POINTS",
    "DEFAULT_SEED",
    "TOLERANCE",
    "random_points",
    "invariance_errors",
    "orthogonality_errors",
    "real_imaginary_errors",
    "row_errors",
    "prefix_maximum",
    "figures_by_radius",
    "verification_figures",
]

DEFAULT_POINTS = 4
DEFAULT_SEED = 20251215
TOLERANCE = 1e-10


def random_points(n_points: int = DEFAULT_POINTS, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(n_points, 3) float64 fractional coordinates, uniform in the cell."""
    return np.random.default_rng(seed).random((n_points, 3))


def invariance_errors(basis: Basis, points: np.ndarray) -> np.ndarray:
    """(n_basis,) largest |e_i(g x) - e_i(x)| over ``points`` and every operation g.

    The operations include the centring translations of the setting.
    """
    setting = basis.setting
    rotations = setting.rotations.astype(np.float64)
    # g x = R x + t for every (operation, point): (n_ops * n_points, 3).
    moved = np.einsum("oij,pj->opi", rotations, points) + setting.fractional_translations[:, None, :]
    features = basis.encode(np.concatenate([points, moved.reshape(-1, 3)]))
    reference, images = features[: len(points)], features[len(points) :]
    deviation = np.abs(images.reshape(setting.n_operations, len(points), -1) - reference)
    return deviation.max(axis=(0, 1), initial=0.0)


def orthogonality_errors(routing: sp.spmatrix) -> np.ndarray:
    """(n_rows,) row i: largest |(M M^H - I)_ij| over j <= i.

    Plane waves are orthonormal on the unit cell, so M M^H is the Gram matrix of the basis.
    """
    gram = (routing @ routing.conj().T).tocoo()
    deviation = np.abs(gram.data - (gram.row == gram.col))
    lower = gram.col <= gram.row
    errors = np.zeros(routing.shape[0])
    np.maximum.at(errors, gram.row[lower], deviation[lower])
    # A diagonal entry that is structurally missing is an error of 1.
    diagonal_present = np.zeros(routing.shape[0], dtype=bool)
    diagonal_present[gram.row[gram.row == gram.col]] = True
    errors[~diagonal_present] = 1.0
    return errors


def real_imaginary_errors(basis: Basis, points: np.ndarray) -> np.ndarray:
    """(n_basis,) largest imaginary part left in real_factor * e_source at ``points``.

    Zero for pair rows by construction (they take Re or Im of a complex function); for a
    self-conjugate orbit it checks that the chosen unit phase really makes it real.
    """
    features = basis.encode(points)
    rows = np.arange(basis.n_basis)
    self_conjugate = basis.real_partner == rows
    errors = np.zeros(basis.n_basis)
    values = features[:, rows[self_conjugate]] * basis.real_factor[self_conjugate]
    errors[self_conjugate] = np.abs(values.imag).max(axis=0, initial=0.0)
    return errors


def row_errors(basis: Basis, points: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-row error figure of ``basis``."""
    return {
        "invariance_error": invariance_errors(basis, points),
        "orthogonality_error": orthogonality_errors(basis.routing),
        "real_orthogonality_error": orthogonality_errors(basis.real_routing),
        "real_imaginary_error": real_imaginary_errors(basis, points),
    }


def prefix_maximum(per_row: np.ndarray, n_rows: np.ndarray) -> np.ndarray:
    """Largest error over the first n rows, for each n in ``n_rows`` (0 for n = 0)."""
    running = np.maximum.accumulate(np.concatenate([[0.0], per_row]))
    return running[np.asarray(n_rows)]


def figures_by_radius(basis: Basis, radii: list[float], points: np.ndarray) -> list[dict[str, Any]]:
    """Verification figures of ``basis`` truncated at each radius in ``radii`` (<= its own)."""
    errors = row_errors(basis, points)
    truncated = [basis.truncate(r) for r in radii]
    n_rows = np.array([t.n_basis for t in truncated])
    prefix = {name: prefix_maximum(values, n_rows) for name, values in errors.items()}
    return [
        {
            "radius": float(r),
            "n_frequencies": t.n_frequencies,
            "n_basis": t.n_basis,
            "n_absent": int(t.absent.sum()),
            **{name: float(prefix[name][i]) for name in errors},
        }
        for i, (r, t) in enumerate(zip(radii, truncated))
    ]


def verification_figures(basis: Basis, n_points: int = DEFAULT_POINTS, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Verification figures of one basis, as stored for a (setting, radius) pair."""
    (figures,) = figures_by_radius(basis, [basis.radius], random_points(n_points, seed))
    figures["orbit_sizes"] = basis.orbit_sizes.copy()
    return figures
