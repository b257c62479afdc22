"""The model's input for one structure: :class:`EncodedStructure`, made by
:class:`basisdb.model.data.StructureFeaturizer` and kept on disk by :mod:`basisdb.model.encoding_cache`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["EncodedStructure"]


@dataclass(frozen=True, eq=False)
class EncodedStructure:
    """One structure, standardized and encoded.

    Attributes:
        label: name for messages.
        group: ITA number; hall_number: the store setting used.
        numbers: (M,) int64 atomic numbers of the atoms of the standardized cell, one per
            centring class (:func:`basisdb.model.data.centring_classes`): a centring
            translation maps the crystal onto itself, so the atoms it relates have the same
            features and outputs, and M is the primitive cell's number of atoms (every atom
            of the standardized cell, C = 1, for the identity-routing ablation, whose plain
            P1 features tell the copies apart).
        rows: (U, n_slots) float32, the distinct slot-feature rows over every atom in every
            frame (:func:`basisdb.crystal_frames`).  The atoms of one orbit share a row, and
            frames map orbits onto each other, so U is about a quarter of F x M: the
            positional encoder runs once per row, not once per atom and frame.
        row_index: (F, M) int32, the row of each atom in each frame.
        weights: (F,) float64, each frame's weight in an average (summing to 1).
        lattice: (6,) float32 lattice features of the standardized cell.
        radial: (M, M, C, K) float32 pair radial profiles (:func:`pair_radial`) in the
            standardized cell, from atom i to each of the C centring copies of atom j (C = 1
            for a primitive setting); the same in every frame.
        input_to_standardized: (N,) int64, the atom (of the M) at the image of each input atom.
        looser_group: the larger group spglib finds at ten times symprec, or None
            (:attr:`basisdb.Standardization.looser_group`).
    """

    label: str
    group: int
    hall_number: int
    numbers: np.ndarray = field(repr=False)
    rows: np.ndarray = field(repr=False)
    row_index: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    lattice: np.ndarray = field(repr=False)
    radial: np.ndarray = field(repr=False)
    input_to_standardized: np.ndarray = field(repr=False)
    looser_group: int | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def n_copies(self) -> int:
        """The setting's centring translations: atoms of the standardized cell per atom here."""
        return int(self.radial.shape[2])

    @property
    def n_frames(self) -> int:
        return int(self.row_index.shape[0])

    @property
    def frames(self) -> np.ndarray:
        """(F, M, n_slots) float32 slot features of every atom in every frame."""
        return self.rows[self.row_index]

    @cached_property
    def distinct_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(D,) int64, the frames that differ in some atom's row, in their order, and (D,)
        float64, the weight each carries in an average over the frames: its own and that of
        every frame that gives every atom the same row.  Such frames are one model input, so
        prediction runs each once (3.5% of flla_2015's frames repeat another)."""
        first, inverse = distinct_row_indices(self.row_index)
        order = np.argsort(first)  # keep the frames' order: without repeats, the frames as they are
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return first[order], np.bincount(rank[inverse], weights=self.weights, minlength=len(first))


def distinct_row_indices(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a 2D array: the index of the first of each distinct row (in the order of the rows'
    bytes) and, for every row, which of them it is.  Rows are compared by their bytes (exact
    duplicates only), as one opaque value each: 20 times faster than ``np.unique(axis=0)``,
    which compares column by column."""
    array = np.ascontiguousarray(array)
    opaque = array.view(np.dtype((np.void, array.shape[1] * array.itemsize))).ravel()
    _, first, inverse = np.unique(opaque, return_index=True, return_inverse=True)
    return first, inverse.ravel()
