"""The CFT's input as a differentiable function of the input's atomic positions.

:class:`basisdb.model.data.StructureFeaturizer` computes a structure's model input once, in
numpy: standardization, frames, features, pair profiles.  Here the same input is rebuilt with
PyTorch from the input's Cartesian positions, so that autograd gives the gradient of a
prediction with respect to them:

- the standardized positions are the group average of the input atoms' images, affine in
  the input (:meth:`basisdb.Standardization.position_jacobian`);
- each frame applies an element ``(W, w)`` of the Euclidean normalizer and, on polar axes,
  puts the anchor atom at the origin (affine again) or the origin where the structure-factor
  phases put it, with weights ``|F_s|^2`` that move with the atoms too
  (:func:`basisdb.frames.frames_of`);
- the features of the frames' positions are :class:`~basisdb.model.invariant_features.InvariantFeatures`,
  and the pair radial profiles are the Gaussians of distances recomputed from the positions
  over the neighbour list found for them.

Values equal the precomputed input's (the function checks that the frames it rebuilds are the
featurizer's, and the tests compare predictions); the gradient is exact where the map is
smooth, that is away from the discrete choices (which standardization, which neighbours
within 8.5 A), which are held at those of the given positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from basisdb import NEGLIGIBLE_WEIGHT, TRANSLATION_DENOMINATOR, Cell, CrystalFrames

from .data import (
    RADIAL_CENTRES,
    RADIAL_WIDTH,
    SUBNORMAL_CUT,
    Batch,
    StructureFeaturizer,
    lattice_features,
    radial_neighbours,
)
from .invariant_features import InvariantFeatures

__all__ = ["DifferentiableInput", "differentiable_input"]


@dataclass(frozen=True)
class DifferentiableInput:
    """The model input of one structure, built from ``cartesian`` positions with autograd.

    Attributes:
        batch: the model's input: one sequence per frame (every frame, none merged: two
            frames alike in value may differ in how they move with the positions).
        cartesian: (N, 3) float64, the input atoms' Cartesian positions (Angstrom) the batch
            is a function of; ``requires_grad`` is set.
        group, hall_number: the structure's group and setting.
    """

    batch: Batch
    cartesian: torch.Tensor
    group: int
    hall_number: int


def differentiable_input(
    featurizer: StructureFeaturizer,
    layer_of: Callable[[int], InvariantFeatures],
    cell: Cell,
    device: torch.device | str = "cpu",
) -> DifferentiableInput:
    """The CFT input of ``cell`` as a function of its atoms' Cartesian positions;
    ``layer_of(hall)`` gives the layer that serves a setting at the featurizer's radius in the
    slots layout, on ``device``."""
    if featurizer.routing != "group":
        raise ValueError("gradients are computed for the CFT's group routing only")
    framed = featurizer.frames(cell)
    standard = framed.standardization
    cartesian = torch.tensor(cell.positions @ cell.lattice, dtype=torch.float64, requires_grad=True)
    fractional = cartesian @ torch.from_numpy(np.linalg.inv(cell.lattice))
    # Values exactly the numpy ones; derivatives those of the affine maps.
    jacobian = torch.from_numpy(standard.position_jacobian())
    standardized = torch.tensor(standard.cell.positions) + torch.einsum(
        "aimn,in->am", jacobian, fractional - fractional.detach()
    )
    positions, weights = _frames(framed, standardized)
    off = positions.detach().numpy() - framed.positions
    if (
        np.abs(off - np.rint(off)).max(initial=0) > 1e-9
        or np.abs(weights.detach().numpy() - framed.weights).max() > 1e-12
    ):
        raise RuntimeError(f"{cell.label}: the frames rebuilt for the gradient are not the featurizer's")
    classes = featurizer.centring_classes(standard)
    kept = classes[:, 0]
    n_frames, n_atoms = len(framed.weights), len(kept)
    on_atoms = positions[:, kept].reshape(-1, 3)
    hall = standard.setting.hall_number
    rows = layer_of(hall)(on_atoms.to(device), hall).float()  # computed in float64, stored in float32
    radial = _pair_radial(standard.cell.lattice, standard.cell.n_atoms, standardized, kept)[:, classes]
    batch = Batch(
        rows=rows,
        row_structure=torch.zeros(len(rows), dtype=torch.long),
        row_of=torch.arange(n_frames * n_atoms).reshape(n_frames, n_atoms),
        numbers=torch.from_numpy(np.tile(standard.cell.numbers[kept], (n_frames, 1))),
        mask=torch.ones(n_frames, n_atoms, dtype=torch.bool),
        ita_numbers=torch.tensor([standard.setting.group]),
        lattice=torch.from_numpy(lattice_features(standard.cell.lattice))[None],
        radial=radial[None].float(),
        copies=torch.ones(1, classes.shape[1], dtype=torch.bool),
        owner=torch.zeros(n_frames, dtype=torch.long),
        weight=weights.float(),
    ).to(device)
    return DifferentiableInput(batch, cartesian, standard.setting.group, hall)


def _frames(framed: CrystalFrames, standardized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, M, 3) the standardized positions in every frame and (F,) the frames' weights, as
    :func:`basisdb.frames.frames_of` makes them (normalizer elements, then the polar origin at
    an anchor atom or where the structure-factor phases put it), wrapped into [0, 1) by a
    constant shift."""
    normalizer = framed.normalizer
    linear = torch.from_numpy(normalizer.linear_float)
    translation = torch.from_numpy(normalizer.translations / TRANSLATION_DENOMINATOR)
    moved = torch.einsum("kij,mj->kmi", linear, standardized) + translation[:, None, :]
    polar = torch.tensor(normalizer.polar)
    numbers = framed.standardization.cell.numbers
    weights = torch.tensor(framed.weights)
    if framed.origin == "anchored":
        species, counts = np.unique(numbers, return_counts=True)
        rarest = species[np.lexsort((-species, counts))[0]]
        anchors = moved[:, numbers == rarest, :]  # (K, A, 3)
        shifts = torch.where(polar, -anchors, torch.zeros_like(anchors))
        moved = (moved[:, None, :, :] + shifts[:, :, None, :]).reshape(-1, *moved.shape[1:])
    elif framed.origin == "phased":
        moved, weights = _phased(moved, numbers, normalizer.polar, np.array(framed.phase_orders))
    return moved - torch.floor(moved.detach()), weights


def _phased(
    moved: torch.Tensor, numbers: np.ndarray, polar: np.ndarray, orders: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """basisdb.frames._phased_origins with autograd: each species' phases of order k_j along
    the polar axes put the origin (k_j solutions per axis), each frame weighted by |F_s|^2;
    the frames of negligible weight are left out as there."""
    axes = np.flatnonzero(polar)
    solutions = torch.from_numpy(
        np.stack(np.meshgrid(*[np.arange(k) for k in orders], indexing="ij"), axis=-1).reshape(-1, len(axes)) / orders
    )
    orders_t = torch.from_numpy(orders.astype(np.float64))
    frames, weights = [], []
    for species in np.unique(numbers):  # the species of one crystal: a handful
        coordinates = moved[:, numbers == species][:, :, axes]  # (K, n_s, n_axes)
        factors = torch.polar(torch.ones_like(coordinates), 2 * np.pi * orders_t * coordinates).sum(dim=1)
        size = np.sqrt(coordinates.shape[1])
        magnitude = (factors.abs() / size).prod(dim=1)
        base = -torch.angle(factors) / (2 * np.pi * orders_t)  # (K, n_axes)
        shifts = torch.zeros(len(moved), len(solutions), 3, dtype=moved.dtype)
        shifts[:, :, axes] = base[:, None, :] + solutions[None]
        frames.append(moved[:, None] + shifts[:, :, None, :])  # (K, C, M, 3)
        weights.append((magnitude[:, None] ** 2).expand(-1, len(solutions)))
    frames_t, weights_t = torch.cat(frames, dim=1), torch.cat(weights, dim=1)
    weights_t = weights_t / weights_t.sum(dim=1, keepdim=True)
    keep = torch.from_numpy(weights_t.detach().numpy() > NEGLIGIBLE_WEIGHT)
    weights_t = weights_t[keep]
    return frames_t[keep], weights_t / weights_t.sum()


def _pair_radial(lattice: np.ndarray, n_standard: int, standardized: torch.Tensor, centres: np.ndarray) -> torch.Tensor:
    """(C, M, K) float64 :func:`basisdb.model.data.pair_radial` of the standardized atoms,
    from ``standardized`` (M, 3) fractional positions with autograd: the pairs and images
    within reach are found for the current positions, their distances recomputed in torch."""
    centre, neighbour, image, _ = radial_neighbours(lattice, standardized.detach().numpy(), centres)
    separation = (
        standardized[neighbour] + torch.from_numpy(np.asarray(image, dtype=np.float64)) - standardized[centres[centre]]
    )
    distance = torch.linalg.vector_norm(separation @ torch.from_numpy(np.asarray(lattice, dtype=np.float64)), dim=-1)
    centres_t = torch.from_numpy(RADIAL_CENTRES)
    profile = torch.exp(-(((distance[:, None] - centres_t) / RADIAL_WIDTH) ** 2))
    index = torch.from_numpy(np.asarray(centre, dtype=np.int64) * n_standard + np.asarray(neighbour, dtype=np.int64))
    out = torch.zeros(len(centres) * n_standard, len(RADIAL_CENTRES), dtype=torch.float64).index_add(0, index, profile)
    out = torch.where(out.detach() < SUBNORMAL_CUT, torch.zeros_like(out), out)
    return out.reshape(len(centres), n_standard, -1)
