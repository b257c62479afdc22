"""The peers the CFT is measured against, on the same folds (see :mod:`basisdb.model.evaluate`).

- :class:`MeanBaseline`: predicts the training mean.
- :class:`CompositionForest`: a random forest (scikit-learn) on matminer's Magpie
  element-property statistics of the formula; it never sees the structure.  With
  :func:`structure_features` appended (density, volume per atom, packing fraction, space
  group number, sites in the primitive cell) it is the "magpie-structure-rf" method, the
  strongest cheap peer.
- :class:`CGCNN`: a crystal graph convolutional network (T. Xie and J. C. Grossman, Phys. Rev.
  Lett. 120, 145301, 2018), trained from scratch.  No CGCNN package is published on PyPI (the
  authors' code is a GitHub repository); matgl 4.1.2 and ALIGNN do install here, but they
  provide other architectures (MEGNet, M3GNet, ALIGNN).  So the network is assembled from
  PyTorch Geometric's ``CGConv``, which is CGCNN's gated convolution, wired as in the paper:
  graphs of the 12 nearest neighbours within 8 A, distances expanded in Gaussians 0.2 A apart,
  3 convolutions of width 64 with batch normalization and softplus, mean pooling, a 128-wide
  softplus head.  Atoms start, as in the
  paper, from tabulated element properties, here the same pymatgen table the CFT uses
  (:class:`basisdb.model.modules.ElementEmbedding`, 13 properties plus a learned vector per element)
  instead of the paper's 92 one-hot bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .data import SUBNORMAL_CUT, TensorBatch
from .modules import ElementEmbedding, atomic_radius, segment_mean

__all__ = [
    "MeanBaseline",
    "CompositionForest",
    "magpie_features",
    "structure_features",
    "STRUCTURE_FEATURES",
    "CrystalGraph",
    "crystal_graph",
    "CGCNN",
    "CGCNNConfig",
    "graph_collate",
    "gaussian_expansion",
]


class MeanBaseline:
    """Predicts the mean of the training targets."""

    def fit(self, targets: np.ndarray) -> MeanBaseline:
        self.mean_ = float(np.mean(targets))
        return self

    def predict(self, n: int) -> np.ndarray:
        return np.full(n, self.mean_)


def magpie_features(formulas: Sequence[str]) -> np.ndarray:
    """(n, 132) float64 Magpie statistics (min, max, range, mean, mean deviation, mode of 22
    element properties) of each formula, from matminer; missing element data imputed as
    matminer's preset does."""
    import warnings

    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Composition

    featurizer = ElementProperty.from_preset("magpie", impute_nan=True)
    unique, inverse = np.unique(np.asarray(formulas), return_inverse=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about noble gases' missing electronegativity
        table = np.array([featurizer.featurize(Composition(formula)) for formula in unique], dtype=np.float64)
    return table[inverse]


class CompositionForest:
    """Random forest on Magpie composition statistics (scikit-learn defaults otherwise)."""

    def __init__(self, n_estimators: int = 500, seed: int = 0, n_jobs: int | None = None):
        from sklearn.ensemble import RandomForestRegressor

        self.forest = RandomForestRegressor(n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)

    def fit(self, features: np.ndarray, targets: np.ndarray) -> CompositionForest:
        self.forest.fit(features, targets)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.forest.predict(features)


STRUCTURE_FEATURES = ("density", "volume_per_atom", "packing_fraction", "space_group", "primitive_sites")


def structure_features(structures: Sequence, groups: Sequence[int], primitive_sites: Sequence[int]) -> np.ndarray:
    """(n, 5) float64 simple structure features (:data:`STRUCTURE_FEATURES`): density
    (g/cm^3), volume per atom (A^3), packing fraction (spheres of pymatgen's atomic radius, or
    its calculated radius, then its van der Waals radius, for elements without one, such as
    the noble gases, where matminer's DensityFeatures fails), space group number and sites in
    the primitive cell (both from the standardization)."""
    rows = []
    for structure in structures:
        spheres = sum(
            count * 4.0 / 3.0 * np.pi * atomic_radius(element) ** 3 for element, count in structure.composition.items()
        )
        rows.append((float(structure.density), structure.volume / len(structure), spheres / structure.volume))
    return np.column_stack(
        [
            np.array(rows, dtype=np.float64).reshape(-1, 3),
            np.asarray(groups, dtype=np.float64),
            np.asarray(primitive_sites, dtype=np.float64),
        ]
    )


@dataclass(frozen=True, eq=False)
class CrystalGraph:
    """A periodic structure as a graph.

    Attributes:
        numbers: (N,) int64 atomic numbers.
        edges: (2, E) int64 (neighbour, centre) atom indices; periodic images of one atom
            are separate edges.
        distances: (E,) float32 edge lengths in Angstrom.
    """

    numbers: np.ndarray = field(repr=False)
    edges: np.ndarray = field(repr=False)
    distances: np.ndarray = field(repr=False)


def crystal_graph(structure, cutoff: float = 8.0, max_neighbors: int = 12) -> CrystalGraph:
    """The ``max_neighbors`` nearest neighbours of every atom within ``cutoff`` (pymatgen's
    neighbour list over periodic images)."""
    centres, neighbours, _, distances = structure.get_neighbor_list(cutoff)
    order = np.lexsort((distances, centres))
    centres, neighbours, distances = centres[order], neighbours[order], distances[order]
    first = np.searchsorted(centres, centres, side="left")  # rank within each centre's sorted list
    keep = np.arange(len(centres)) - first < max_neighbors
    return CrystalGraph(
        numbers=np.array(structure.atomic_numbers, dtype=np.int64),
        edges=np.stack([neighbours[keep], centres[keep]]).astype(np.int64),
        distances=distances[keep].astype(np.float32),
    )


@dataclass
class GraphBatch(TensorBatch):
    """Disjoint union of B graphs: numbers (N,), edges (2, E), distances (E,), graph (N,)
    the graph of each atom, owner (B,) the item of each graph (one graph per item)."""

    numbers: torch.Tensor
    edges: torch.Tensor
    distances: torch.Tensor
    graph: torch.Tensor
    owner: torch.Tensor


def graph_collate(graphs: Sequence[CrystalGraph], training: bool = False, rng=None) -> GraphBatch:
    sizes = np.array([g.numbers.shape[0] for g in graphs])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    edge_counts = np.array([g.edges.shape[1] for g in graphs])
    return GraphBatch(
        numbers=torch.from_numpy(np.concatenate([g.numbers for g in graphs])),
        edges=torch.from_numpy(np.concatenate([g.edges for g in graphs], axis=1) + np.repeat(offsets, edge_counts)),
        distances=torch.from_numpy(np.concatenate([g.distances for g in graphs])),
        graph=torch.from_numpy(np.repeat(np.arange(len(graphs)), sizes)),
        owner=torch.arange(len(graphs)),
    )


@dataclass(frozen=True)
class CGCNNConfig:
    width: int = 64
    convolutions: int = 3
    head: int = 128
    cutoff: float = 8.0
    gaussian_step: float = 0.2


def gaussian_expansion(distances: torch.Tensor, centres: torch.Tensor, width: float) -> torch.Tensor:
    """(E, K) exp(-((d - c_k) / width)^2), with tails below ``SUBNORMAL_CUT`` set to zero:
    float32 subnormals made every matrix product of the CGCNN 6x slower on the CPU."""
    gaussians = torch.exp(-(((distances[:, None] - centres) / width) ** 2))
    return gaussians.masked_fill(gaussians < SUBNORMAL_CUT, 0.0)


class CGCNN(nn.Module):
    """Element features, CGConv x3 (each followed by softplus), mean pooling, MLP head."""

    def __init__(self, config: CGCNNConfig = CGCNNConfig()):
        from torch_geometric.nn import CGConv

        super().__init__()
        self.config = config
        self.register_buffer(
            "centres", torch.arange(0.0, config.cutoff + config.gaussian_step / 2, config.gaussian_step)
        )
        self.element = ElementEmbedding(config.width)
        self.convolutions = nn.ModuleList(
            CGConv(config.width, dim=len(self.centres), aggr="add", batch_norm=True) for _ in range(config.convolutions)
        )
        self.head = nn.Sequential(nn.Linear(config.width, config.head), nn.Softplus(), nn.Linear(config.head, 1))

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        """(B,) normalized predictions, one per graph."""
        gaussians = gaussian_expansion(batch.distances, self.centres, self.config.gaussian_step)
        x = self.element(batch.numbers)
        for convolution in self.convolutions:
            x = nn.functional.softplus(convolution(x, batch.edges, gaussians))
        return self.head(segment_mean(x, batch.graph, len(batch.owner))).squeeze(-1)
