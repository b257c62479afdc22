"""The symmetry-adapted Fourier features of a structure as a matminer featurizer.

:class:`SymmetryFourierFeaturizer` is a matminer ``BaseFeaturizer``: one structure in (a
pymatgen ``Structure``, an ASE ``Atoms``, a basisdb ``Cell`` or a structure file's path), a
fixed-length vector out, so that it runs in ``featurize_dataframe`` next to matminer's own
featurizers::

    >>> from basisdb.model.featurizer import SymmetryFourierFeaturizer   # doctest: +SKIP
    >>> featurizer = SymmetryFourierFeaturizer(radius=4)
    >>> table = featurizer.featurize_dataframe(frame, "structure")  # 4 x 320 columns at radius 4

Each atom is encoded as the model sees it (:class:`basisdb.model.data.StructureFeaturizer`): the
structure is standardized into its space group's setting, the real invariant basis functions
of that group (truncation ``radius``) are evaluated at the atom in every frame
(:func:`basisdb.crystal_frames`) and averaged over the frames with their weights, so that the
row is the same whatever cell, origin, orientation, handedness (with ``invariance="e3"``) or
atom order the crystal came in.  Basis functions sit in fixed slots (``n_slots`` of them at a
radius, the same for all 230 groups), so rows of different groups have one width.  The rows
of the atoms are then pooled with ``stats``: the features are ``stat`` of ``slot k`` for each
statistic and slot.  They describe where the atoms sit, not which elements they are: combine
them with a composition featurizer for chemistry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matminer.featurizers.base import BaseFeaturizer

from basisdb import DEFAULT_SYMPREC, INVARIANCES, BasisStore, crystal_frames

from .data import StructureFeaturizer, as_cell

__all__ = ["SymmetryFourierFeaturizer", "STATISTICS"]

# Statistics of the atoms' rows; all are unchanged when every atom is repeated alike (a supercell).
STATISTICS = {
    "mean": lambda rows: rows.mean(axis=0),
    "std": lambda rows: rows.std(axis=0),
    "min": lambda rows: rows.min(axis=0),
    "max": lambda rows: rows.max(axis=0),
}

PAPER_CITATION = (
    "@misc{zhang2025single, author = {Zhang and Ertekin and Orbanz and Adams}, "
    "title = {A Single Architecture for Representing Invariance Under Any Space Group}, year = {2025}, "
    "eprint = {2512.13989}, archivePrefix = {arXiv}, url = {https://arxiv.org/abs/2512.13989}}"
)
SPGLIB_CITATION = (
    "@article{togo2024spglib, author = {Togo, Atsushi and Shinohara, Kohei and Tanaka, Isao}, "
    "title = {Spglib: a software library for crystal symmetry search}, "
    "journal = {Science and Technology of Advanced Materials: Methods}, volume = {4}, number = {1}, "
    "pages = {2384822}, year = {2024}, doi = {10.1080/27660400.2024.2384822}}"
)


class SymmetryFourierFeaturizer(BaseFeaturizer):
    """Frame-averaged symmetry-adapted Fourier features of the atoms, pooled per structure.

    Args:
        radius: truncation radius of the basis (the store must hold it).
        store: a :class:`basisdb.BasisStore` or its path; None: the default store (built on
            first use). Opened when first needed, and again in each worker process.
        invariance: ``"e3"`` (a crystal and its mirror image are one) or ``"proper"``.
        stats: statistics over the atoms, from :data:`STATISTICS`, in the order of the features.
        symprec: spglib's tolerance, Angstrom.
    """

    def __init__(
        self,
        radius: float = 4.0,
        store: BasisStore | str | os.PathLike | None = None,
        invariance: str = "e3",
        stats: Sequence[str] = ("mean", "std", "min", "max"),
        symprec: float = DEFAULT_SYMPREC,
    ):
        if invariance not in INVARIANCES:
            raise ValueError(f"invariance must be one of {INVARIANCES}, got {invariance!r}")
        unknown = [stat for stat in stats if stat not in STATISTICS]
        if unknown or not stats:
            raise ValueError(f"stats must be some of {tuple(STATISTICS)}, got {tuple(stats)!r}")
        self.radius = radius
        self.store = store
        self.invariance = invariance
        self.stats = tuple(stats)
        self.symprec = symprec
        self._encoder: StructureFeaturizer | None = None

    @property
    def encoder(self) -> StructureFeaturizer:
        """The model's structure featurizer at this radius (its slots and its store)."""
        if self._encoder is None:
            store = self.store if isinstance(self.store, BasisStore) else BasisStore.open(self.store)
            self._encoder = StructureFeaturizer(store, self.radius, self.symprec, self.invariance)
        return self._encoder

    @property
    def n_slots(self) -> int:
        return self.encoder.n_slots

    def site_features(self, structure: Any) -> np.ndarray:
        """(M, n_slots) float64: each standardized atom's basis functions in their slots,
        averaged over the frames (zero in the slots the group's basis leaves empty)."""
        encoder = self.encoder
        frames = crystal_frames(
            as_cell(structure), symprec=encoder.symprec, invariance=encoder.invariance, max_anchors=encoder.max_anchors
        )
        hall = frames.setting.hall_number
        values = frames.encode(encoder.store.basis(hall=hall, radius=encoder.radius), real=True)
        rows = np.zeros((values.shape[0], encoder.n_slots))
        rows[:, encoder.slots(hall)] = values
        return rows

    def featurize(self, structure: Any) -> list[float]:
        rows = self.site_features(structure)
        return np.concatenate([STATISTICS[stat](rows) for stat in self.stats]).tolist()

    def feature_labels(self) -> list[str]:
        radius = f"{float(self.radius):g}"
        return [f"{stat} fourier slot {k} (r={radius})" for stat in self.stats for k in range(self.n_slots)]

    def citations(self) -> list[str]:
        """The paper the features come from, and spglib, which standardizes the structures."""
        return [PAPER_CITATION, SPGLIB_CITATION]

    def implementors(self) -> list[str]:
        return ["the basisdb project"]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_encoder"] = None  # reopened where it is unpickled (matminer's worker processes)
        return state
