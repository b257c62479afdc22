"""The same crystal, described differently: helpers to test invariance.

A pipeline that promises the same answer for the same crystal should be tried on what an
adversarial user sends: supercells (diagonal or not), other cells, relabelled axes, a
reversed polar axis, a shifted origin, reordered atoms, a rotated frame, the mirror image.
Each helper returns the new :class:`~basisdb.Cell` and ``source``: for every atom of the new
description, the atom of the original it copies, so that per-atom answers can be compared
row by row (``new_answers`` against ``answers[source]``).

>>> import numpy as np
>>> from basisdb import Cell
>>> from basisdb.redescriptions import cell_change
>>> salt = Cell(5.64 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [11, 17])
>>> bigger, source = cell_change(salt, [[1, 1, 0], [-1, 1, 0], [0, 0, 1]])
>>> bigger.n_atoms, source.tolist()
(4, [0, 1, 0, 1])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import StructureError
from .structures import Cell

__all__ = [
    "Redescribe",
    "cell_change",
    "permuted",
    "rotated",
    "mirrored",
    "noisy",
    "random_unimodular",
    "reverse_rhombohedral",
    "random_crystal",
    "RELABELLINGS",
    "SUPERCELLS",
    "REDESCRIPTIONS",
]

Redescribe = Callable[[Cell, np.random.Generator], tuple[Cell, np.ndarray]]


def cell_change(cell: Cell, matrix, shift=(0.0, 0.0, 0.0)) -> tuple[Cell, np.ndarray]:
    """The same atoms in the cell whose rows are ``matrix @ lattice`` (an integer ``matrix``
    with |det| >= 1: a supercell when |det| > 1), every atom moved by ``shift`` (fractional
    coordinates of the old cell)."""
    matrix = np.asarray(matrix)
    if matrix.shape != (3, 3) or not np.array_equal(matrix, np.rint(matrix)) or round(abs(np.linalg.det(matrix))) < 1:
        raise StructureError(
            f"a cell change needs an integer (3, 3) matrix with nonzero determinant, got {matrix.tolist()}"
        )
    matrix = matrix.astype(np.int64)
    n = int(round(abs(np.linalg.det(matrix))))
    lattice = matrix @ cell.lattice
    inverse = np.linalg.inv(matrix)
    reach = int(np.abs(matrix).sum(axis=0).max()) + 1
    points = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    inside = points @ inverse
    copies = points[np.all((inside > -1e-9) & (inside < 1 - 1e-9), axis=1)]  # old-lattice points in the new cell
    positions = ((cell.positions + np.asarray(shift))[None, :, :] + copies[:, None, :]).reshape(-1, 3) @ inverse
    source = np.tile(np.arange(cell.n_atoms), n)
    return Cell(lattice, positions % 1.0, cell.numbers[source], cell.label), source


def permuted(cell: Cell, order) -> tuple[Cell, np.ndarray]:
    order = np.asarray(order)
    return Cell(cell.lattice, cell.positions[order], cell.numbers[order], cell.label), order


def rotated(cell: Cell, rng: np.random.Generator) -> tuple[Cell, np.ndarray]:
    """A rigid proper rotation of the Cartesian frame."""
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    return Cell(cell.lattice @ q.T, cell.positions, cell.numbers, cell.label), np.arange(cell.n_atoms)


def mirrored(cell: Cell) -> tuple[Cell, np.ndarray]:
    """The mirror image through the origin, r -> -r (for an achiral crystal, the same crystal)."""
    return Cell(cell.lattice, -cell.positions % 1.0, cell.numbers, cell.label), np.arange(cell.n_atoms)


def noisy(cell: Cell, rng: np.random.Generator, angstrom: float) -> tuple[Cell, np.ndarray]:
    """Every atom moved by exactly ``angstrom`` in a random direction."""
    direction = rng.normal(size=cell.positions.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    positions = cell.positions + (angstrom * direction) @ np.linalg.inv(cell.lattice)
    return Cell(cell.lattice, positions, cell.numbers, cell.label), np.arange(cell.n_atoms)


def random_unimodular(rng: np.random.Generator, bound: int = 2) -> np.ndarray:
    """A random integer matrix with determinant +1 (a proper change of cell)."""
    while True:
        matrix = rng.integers(-bound, bound + 1, (3, 3))
        if round(np.linalg.det(matrix)) == 1:
            return matrix


# Proper relabellings of the axes (determinant +1): (b, -a, c), (a + b, -a, c), (b, a, -c),
# and the polar axes reversed by a 2-fold rotation: (a, -b, -c) and (-a, -b, c).
RELABELLINGS = {
    "(b,-a,c)": [[0, 1, 0], [-1, 0, 0], [0, 0, 1]],
    "(a+b,-a,c)": [[1, 1, 0], [-1, 0, 0], [0, 0, 1]],
    "(b,a,-c)": [[0, 1, 0], [1, 0, 0], [0, 0, -1]],
    "(a,-b,-c)": [[1, 0, 0], [0, -1, 0], [0, 0, -1]],
    "(-a,-b,c)": [[-1, 0, 0], [0, -1, 0], [0, 0, 1]],
}
SUPERCELLS = {
    "2x1x1": np.diag([2, 1, 1]),
    "2x2x2": np.diag([2, 2, 2]),
    "[[1,1,0],[-1,1,0],[0,0,1]]": [[1, 1, 0], [-1, 1, 0], [0, 0, 1]],
}


def _changed_by(matrix) -> Redescribe:
    """The re-description by one fixed change of cell (each entry keeps its own matrix)."""
    return lambda c, r: cell_change(c, matrix)


REDESCRIPTIONS: dict[str, Redescribe] = {
    **{f"supercell {name}": _changed_by(m) for name, m in SUPERCELLS.items()},
    **{f"relabelled {name}": _changed_by(m) for name, m in RELABELLINGS.items()},
    "origin shifted": lambda c, r: cell_change(c, np.eye(3), r.random(3)),
    "atoms reordered": lambda c, r: permuted(c, r.permutation(c.n_atoms)),
    "rotated": rotated,
    "random proper cell, origin and order": lambda c, r: _compose(c, r),
}


def _compose(cell: Cell, rng: np.random.Generator) -> tuple[Cell, np.ndarray]:
    changed, source = cell_change(cell, random_unimodular(rng), rng.random(3))
    order = rng.permutation(changed.n_atoms)
    again, _ = permuted(changed, order)
    return again, source[order]


def reverse_rhombohedral(cell: Cell) -> tuple[Cell, np.ndarray]:
    """A rhombohedral crystal given on hexagonal axes in the reverse setting: the obverse
    conventional cell turned by 180 degrees about c (centring (1/3, 2/3, 1/3))."""
    return cell_change(cell, [[-1, 0, 0], [0, -1, 0], [0, 0, 1]])


def random_crystal(
    n_atoms: int,
    rng: np.random.Generator,
    numbers=(14,),
    volume_per_atom: float = 12.0,
    label: str = "",
    closest: float = 1.0,
) -> Cell:
    """A P1 crystal of ``n_atoms`` uniformly random atoms, no two closer than ``closest``
    Angstrom, in a slightly skewed cell: a stand-in for a large, symmetry-free structure in
    cost and invariance tests.  (Atoms near a grid would not do: a grid is a
    pseudo-translation, which is what makes a polar origin hard to fix.)"""
    edge = (volume_per_atom * n_atoms) ** (1 / 3)
    lattice = edge * (np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3)))
    from scipy.spatial import cKDTree

    positions = rng.random((n_atoms, 3))
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    reach = 1.2 * closest / edge  # fractional: the cell is nearly cubic
    for _ in range(1000):  # redraw one atom of each pair that is too close, until none is
        pairs = cKDTree(positions, boxsize=1.0).query_pairs(reach, p=np.inf, output_type="ndarray")
        delta = positions[pairs[:, 0]] - positions[pairs[:, 1]]
        delta -= np.rint(delta)
        close = np.linalg.norm((delta[:, None, :] + shifts) @ lattice, axis=-1).min(axis=1) < closest
        crowded = np.unique(pairs[close, 0])
        if not len(crowded):
            break
        positions[crowded] = rng.random((len(crowded), 3))
    species = np.asarray(numbers)[rng.integers(len(numbers), size=n_atoms)]
    return Cell(lattice, positions, species, label or f"random P1, {n_atoms} atoms")
