"""The frames of a crystal: every equally valid standardization of it.

A basis of :mod:`basisdb` is invariant under the group G of a setting, so the features of a
standardized crystal do not change under G.  They do change under the rest of the crystal's
Euclidean normalizer (:mod:`basisdb.normalizer`), and spglib may land on any of its cosets
depending on how the crystal was described: its cell, origin, orientation, atom order.
The frames are all of them: the standardized positions moved by one representative of each
coset, with the continuous origin along polar directions fixed per frame.  A function
averaged over the frames of a crystal, or taken of their multiset, depends on the crystal
alone.

Two invariances are offered (:data:`Invariance`):

- ``"proper"``: the same crystal after any rotation, translation, cell choice or atom order.
  A chiral crystal and its mirror image stay different.
- ``"e3"``: the mirror image too (improper elements of the normalizer; for the 11
  enantiomorphic pairs such as P4_1/P4_3, the member with the larger ITA number is
  standardized from the inverted crystal, so both images reach the same frames).  Scalar
  properties are the same for a crystal and its mirror image, and E(3)-invariant models
  (CGCNN and its kin) give them the same value, so this is the default.

Polar directions (P1, P2, Pmm2, P4mm, P6_3mc, ...) allow any origin along them.  In each
frame it is fixed in one of two ways, both functions of the crystal alone:

- *anchored*: one frame puts each atom of the rarest species (ties: the heaviest) at polar
  coordinate 0.  Exact, and continuous under noise; used when that species has at most
  :data:`MAX_ANCHORS` atoms in the conventional cell, when phases would not need fewer
  frames, or when no phase is well defined (:data:`MIN_PHASE_STRENGTH`; the layers of a
  polytype, equally spaced along c, cancel every low-order structure factor).
- *phased*: otherwise, as crystallographers fix the origin of a polar group by the phase
  of a reflection: for each species s, the origin that makes its structure factor
  ``F_s(k e_j) = sum over atoms of s of exp(2 pi i k x_j)`` real and positive along every
  polar axis j (k the lowest order that is not systematically absent; k solutions per
  axis), weighted by ``prod_j |F_s(k e_j)|^2 / n_s``.  A species whose phase is ill-defined
  (|F_s| near 0) gets a weight near 0, so the average stays continuous; a 200-atom P1 cell
  needs 2 frames instead of 400.  :attr:`CrystalFrames.origin_strength` reports how
  well-defined the best phase is.

Frames carry weights (uniform unless phased); averages over frames are weighted averages.

Reference: Th. Hahn (ed.), International Tables for Crystallography Vol. A, section 3.5
(normalizers of space groups), and the discussion of origin specification in polar groups.

>>> from basisdb import Cell, crystal_frames
>>> salt = Cell(lattice=5.64 * np.eye(3), label="NaCl",
...             positions=[[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
...                        [.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]],
...             numbers=[11, 11, 11, 11, 17, 17, 17, 17])
>>> frames = crystal_frames(salt)
>>> frames.standardization.setting.international, frames.n_frames   # Na or Cl at the origin
('Fm-3m', 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from .basis import Basis
from .encoding import Precision
from .errors import StructureError
from .normalizer import NormalizerCosets, enantiomorphic_partner, euclidean_normalizer
from .settings import TRANSLATION_DENOMINATOR, Setting
from .structures import DEFAULT_SYMPREC, Standardization, standardize

__all__ = [
    "Invariance",
    "INVARIANCES",
    "MAX_ANCHORS",
    "MIN_PHASE_STRENGTH",
    "NEGLIGIBLE_WEIGHT",
    "CrystalFrames",
    "crystal_frames",
    "frames_of",
]

Invariance = Literal["e3", "proper"]
INVARIANCES: tuple[str, ...] = get_args(Invariance)
MAX_ANCHORS = 4
# Phases are used only when the best species' |F_s| / sqrt(n_s) reaches this on every polar
# axis (about 0.9 on average for randomly placed atoms; 1e-5 for polytypes).
MIN_PHASE_STRENGTH = 0.1


@dataclass(frozen=True, eq=False)
class CrystalFrames:
    """The frames of one standardized crystal.

    Attributes:
        standardization: the standardization the frames start from.
        invariance: ``"e3"`` or ``"proper"`` (see the module docstring).
        normalizer: the coset representatives used (polar translations excluded).
        positions: (F, M, 3) float64 fractional coordinates in [0, 1) of the M standardized
            atoms in each of the F frames, in the standardized cell's setting; atom m is the
            same atom in every frame (``standardization.cell.numbers[m]``).
        weights: (F,) float64, positive, summing to 1: the weight of each frame in an average.
        origin: how the polar origin was fixed: ``"none"`` (no polar direction),
            ``"anchored"`` or ``"phased"``.
        origin_strength: where phases were tried, how well the best species fixes the
            origin: the largest over species of ``min_j |F_s(k e_j)| / sqrt(n_s)`` (about 1
            for randomly placed atoms, sqrt(n_s) when they share their polar coordinates,
            near 0 when no phase is well defined); 1.0 otherwise.
        phase_orders: for a phased origin, the order k_j of the structure-factor phase used
            along each polar axis (the lowest order the group's absences leave present);
            empty otherwise.
    """

    standardization: Standardization
    invariance: Invariance
    normalizer: NormalizerCosets
    positions: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    origin: Literal["none", "anchored", "phased"]
    origin_strength: float = 1.0
    phase_orders: tuple[int, ...] = ()

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def setting(self) -> Setting:
        return self.standardization.setting

    def encode(
        self, basis: Basis, *, real: bool = False, average: bool = True, precision: Precision = "double"
    ) -> np.ndarray:
        """Features of the standardized atoms in ``basis`` (which must be of this crystal's
        setting): (M, n_basis), averaged over the frames, with ``average``; else
        (F, M, n_basis), one block per frame.

        The (weighted) average is an invariant of the crystal for each atom: rows for the
        input's atoms are ``encode(basis)[standardization.input_to_standardized]``.
        """
        if basis.hall_number != self.setting.hall_number:
            raise StructureError(
                f"a basis of Hall setting {basis.hall_number} cannot encode a crystal standardized into "
                f"Hall setting {self.setting.hall_number} ({self.setting.international}); pass "
                f"store.basis(hall={self.setting.hall_number}, radius=...)"
            )
        n_frames, n_atoms, _ = self.positions.shape
        if not average:
            return basis.encode(self.positions.reshape(-1, 3), real=real, precision=precision).reshape(
                n_frames, n_atoms, -1
            )
        # A few frames at a time: memory stays at one block, however many frames there are.
        step = max(1, _POINTS_PER_BLOCK // max(1, n_atoms))
        total = None
        for start in range(0, n_frames, step):
            block = self.positions[start : start + step]
            features = basis.encode(block.reshape(-1, 3), real=real, precision=precision).reshape(
                len(block), n_atoms, -1
            )
            part = np.tensordot(self.weights[start : start + step].astype(features.real.dtype), features, axes=1)
            total = part if total is None else total + part
        return total


_POINTS_PER_BLOCK = 1 << 14


def _check_invariance(invariance: object) -> Invariance:
    if invariance not in INVARIANCES:
        raise StructureError(f"invariance must be one of {INVARIANCES}, got {invariance!r}")
    return invariance  # type: ignore[return-value]


def crystal_frames(
    structure: Any,
    *,
    symprec: float = DEFAULT_SYMPREC,
    invariance: Invariance = "e3",
    angle_tolerance: float = -1.0,
    max_anchors: int = MAX_ANCHORS,
) -> CrystalFrames:
    """Standardize ``structure`` (anything :meth:`~basisdb.Cell.from_any` reads: a Cell,
    pymatgen ``Structure``, ASE ``Atoms``, spglib tuple, CIF text or CIF file path) and return
    all its frames.

    ``max_anchors``: the polar origin is anchored on each atom of the rarest species when it
    has at most this many atoms in the conventional cell (or no more than phases would
    need frames), else fixed by phases.
    """
    invariance = _check_invariance(invariance)
    standard = standardize(
        structure, symprec=symprec, angle_tolerance=angle_tolerance, canonical_handedness=invariance == "e3"
    )
    return frames_of(standard, invariance=invariance, max_anchors=max_anchors)


def frames_of(
    standardization: Standardization, *, invariance: Invariance = "e3", max_anchors: int = MAX_ANCHORS
) -> CrystalFrames:
    """The frames of a standardization already in hand.  For ``"e3"`` it must have been
    made with ``standardize(..., canonical_handedness=True)``."""
    invariance = _check_invariance(invariance)
    setting = standardization.setting
    if invariance == "e3" and enantiomorphic_partner(setting.group) < setting.group:
        raise StructureError(
            f"{setting.international} is the second member of an enantiomorphic pair: E(3) frames "
            "need standardize(..., canonical_handedness=True), or use crystal_frames()"
        )
    cell = standardization.cell
    normalizer = euclidean_normalizer(
        setting, cell.lattice, symprec=standardization.symprec, proper=invariance == "proper"
    )
    moved = normalizer.apply(cell.positions)  # (K, M, 3)
    weights = np.full(len(moved), 1.0 / len(moved))
    polar = normalizer.polar
    origin, strength, phase_orders = "none", 1.0, ()
    if polar.any():
        species, counts = np.unique(cell.numbers, return_counts=True)
        orders = np.array([_lowest_present_order(setting, int(axis)) for axis in np.flatnonzero(polar)])
        # Anchoring is exact and always continuous: use it unless phases need fewer frames and
        # are well defined (a polytype's layers, equally spaced along c, cancel every low order).
        phased = None
        if counts.min() > max(max_anchors, len(species) * orders.prod()):
            phased, strength = _phased_origins(moved, cell.numbers, polar, orders)
        if phased is not None:
            origin, (moved, weights) = "phased", phased
            phase_orders = tuple(int(order) for order in orders)
        else:
            origin = "anchored"
            rarest = species[np.lexsort((-species, counts))[0]]
            anchors = moved[:, cell.numbers == rarest, :]  # (K, A, 3)
            shifts = np.where(polar, -anchors, 0.0)
            moved = (moved[:, None, :, :] + shifts[:, :, None, :]).reshape(-1, *moved.shape[1:])
            weights = np.full(len(moved), 1.0 / len(moved))
    positions = moved - np.floor(moved)
    positions[positions >= 1.0] = 0.0  # -1e-17 - floor rounds to 1.0
    for array in (positions, weights):
        array.flags.writeable = False
    return CrystalFrames(
        standardization, invariance, normalizer, positions, weights, origin, float(strength), phase_orders
    )


# Frames of a phased origin whose weight is below this share of their coset's are dropped:
# their species' phase is (near) undefined, and they would change an average by less.
NEGLIGIBLE_WEIGHT = 1e-9


def _phased_origins(
    moved: np.ndarray, numbers: np.ndarray, polar: np.ndarray, orders: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray] | None, float]:
    """For the K frames ``moved`` (K, M, 3): the origins fixed by each species' structure-
    factor phases of order ``orders`` along the polar axes with their weights, and the
    strength of the best-defined phase; no frames when it is below MIN_PHASE_STRENGTH."""
    axes = np.flatnonzero(polar)
    # every combination of the k_j solutions per axis: (C, n_axes) in units of 1/k_j
    solutions = (
        np.stack(np.meshgrid(*[np.arange(k) for k in orders], indexing="ij"), axis=-1).reshape(-1, len(axes)) / orders
    )
    frames, weights, strength = [], [], 0.0
    for s in np.unique(numbers):
        polar_coordinates = moved[:, numbers == s][:, :, axes]  # (K, n_s, n_axes)
        factors = np.exp(2j * np.pi * orders * polar_coordinates).sum(axis=1)  # (K, n_axes)
        # |F_s| does not depend on the origin: the weights are functions of the frame's crystal
        size = np.sqrt(polar_coordinates.shape[1])
        strength = max(strength, float(np.abs(factors).min() / size))
        magnitude = np.abs(factors / size).prod(axis=1)
        base = -np.angle(factors) / (2 * np.pi * orders)  # (K, n_axes): makes each F_s real, positive
        shifts = np.zeros((len(moved), len(solutions), 3))
        shifts[:, :, axes] = base[:, None, :] + solutions[None]
        frames.append(moved[:, None] + shifts[:, :, None, :])  # (K, C, M, 3)
        weights.append(np.repeat(magnitude[:, None] ** 2, len(solutions), axis=1))  # (K, C)
    if strength < MIN_PHASE_STRENGTH:
        return None, strength
    frames = np.concatenate(frames, axis=1)  # (K, S * C, M, 3)
    weights = np.concatenate(weights, axis=1)
    weights = weights / weights.sum(axis=1, keepdims=True)
    keep = weights > NEGLIGIBLE_WEIGHT
    frames, weights = frames[keep], weights[keep]  # (F, M, 3), (F,)
    return (frames, weights / weights.sum()), strength


def _lowest_present_order(setting: Setting, axis: int) -> int:
    """The smallest k >= 1 for which the frequency k e_axis is not systematically absent:
    no operation with R^T h = h gives it a phase k t_axis != 0 (mod 1).  Exact, in 24ths."""
    rows_fixed = (setting.rotations[:, axis, :] == np.eye(3, dtype=np.int8)[axis]).all(axis=1)
    translations = setting.translations[rows_fixed, axis]
    for order in range(1, TRANSLATION_DENOMINATOR + 1):
        if not ((order * translations) % TRANSLATION_DENOMINATOR).any():
            return order
    raise StructureError(f"no present reflection along axis {axis} of {setting.hall_symbol}")  # pragma: no cover
