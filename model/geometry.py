"""Lattices and exact orbit distances for orbit-distance pretraining.

The orbit distance of two points under a space group G on lattice L is

    d_G(x1, x2) = min over (R, t) in G and n in Z^3 of |(x1 - R x2 - t - n) L|

(fractional row vectors, L with the lattice vectors as rows).  The minimum over lattice
translations is found in a reduced basis (Niggli, via spglib), where every difference vector
is wrapped into the reduced cell and its 27 neighbouring images are searched; the
per-coordinate rounding shortcut in the original basis overestimates it in skewed cells.
"""

from __future__ import annotations

import numpy as np
import spglib

from basisdb import Setting, quiet_spglib

__all__ = [
    "CRYSTAL_FAMILIES",
    "lattice_from_parameters",
    "random_lattice",
    "reduced_lattice",
    "orbit_distance",
    "minimum_image_distance",
]

CRYSTAL_FAMILIES = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")
_NEIGHBOURS = np.stack(np.meshgrid(*([np.arange(-1, 2)] * 3), indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float64)


def lattice_from_parameters(a, b, c, alpha, beta, gamma) -> np.ndarray:
    """(3, 3) rows a, b, c (Angstrom) from lengths and angles (degrees); a along x, b in xy."""
    alpha, beta, gamma = np.radians([alpha, beta, gamma])
    cx = np.cos(beta)
    cy = (np.cos(alpha) - np.cos(beta) * np.cos(gamma)) / np.sin(gamma)
    cz = np.sqrt(max(1.0 - cx * cx - cy * cy, 1e-12))
    return np.array([[a, 0.0, 0.0], [b * np.cos(gamma), b * np.sin(gamma), 0.0], [c * cx, c * cy, c * cz]])


def family_of(setting: Setting) -> str:
    """Crystal family of a setting (trigonal groups belong to the hexagonal family)."""
    system = setting.crystal_system
    return "hexagonal" if system == "trigonal" else system


def random_lattice(setting: Setting, rng: np.random.Generator, lengths=(3.0, 9.0)) -> np.ndarray:
    """A random lattice compatible with the setting (conventional cell, default axes)."""
    family = family_of(setting)
    low, high = lengths
    a, b, c = rng.uniform(low, high, size=3)
    if family == "triclinic":
        while True:  # angles of a valid, not too flat cell
            alpha, beta, gamma = rng.uniform(60, 120, size=3)
            lattice = lattice_from_parameters(a, b, c, alpha, beta, gamma)
            if abs(np.linalg.det(lattice)) > 0.3 * a * b * c:
                return lattice
    if family == "monoclinic":
        return lattice_from_parameters(a, b, c, 90, rng.uniform(60, 120), 90)  # unique axis b
    if family == "orthorhombic":
        return lattice_from_parameters(a, b, c, 90, 90, 90)
    if family == "tetragonal":
        return lattice_from_parameters(a, a, c, 90, 90, 90)
    if family == "hexagonal":
        return lattice_from_parameters(a, a, c, 90, 90, 120)
    return lattice_from_parameters(a, a, a, 90, 90, 90)


def reduced_lattice(lattice: np.ndarray) -> np.ndarray:
    """A Niggli-reduced basis of the same lattice (rows)."""
    reduced = quiet_spglib(spglib.niggli_reduce, lattice)
    if reduced is None:
        raise ValueError("spglib could not reduce the lattice")
    return np.asarray(reduced, dtype=np.float64)


def minimum_image_distance(delta: np.ndarray, lattice: np.ndarray, reduced: np.ndarray | None = None) -> np.ndarray:
    """|delta + n| minimized over lattice vectors n, for fractional differences (..., 3)."""
    reduced = reduced_lattice(lattice) if reduced is None else reduced
    cart = delta @ lattice
    in_reduced = cart @ np.linalg.inv(reduced)
    in_reduced -= np.rint(in_reduced)
    images = (in_reduced[..., None, :] + _NEIGHBOURS) @ reduced  # (..., 27, 3)
    return np.sqrt((images**2).sum(axis=-1)).min(axis=-1)


def orbit_distance(
    setting: Setting, lattice: np.ndarray, x1: np.ndarray, x2: np.ndarray, chunk: int = 4096
) -> np.ndarray:
    """(P,) exact orbit distances d_G(x1[i], x2[i]) for fractional points (P, 3)."""
    reduced = reduced_lattice(lattice)
    rotations = setting.rotations.astype(np.float64)
    translations = setting.fractional_translations
    out = np.empty(len(x1))
    for start in range(0, len(x1), chunk):
        a, b = x1[start : start + chunk], x2[start : start + chunk]
        images = np.einsum("oij,pj->poi", rotations, b) + translations  # (P, n_ops, 3)
        delta = a[:, None, :] - images
        out[start : start + chunk] = minimum_image_distance(delta, lattice, reduced).min(axis=1)
    return out
