"""Building blocks: residual MLPs, the shared positional encoder, element embeddings and
pooling."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import LATTICE_FEATURES

__all__ = [
    "ResidualBlock",
    "PositionalEncoder",
    "ElementEmbedding",
    "AtomEnvironment",
    "NeighbourInteraction",
    "CompositionStatistics",
    "atomic_radius",
    "element_property_table",
    "segment_mean",
    "N_GROUP_EMBEDDINGS",
    "ELEMENT_PROPERTIES",
]

N_GROUP_EMBEDDINGS = 231  # ITA numbers 1-230 (index 0 unused)
N_ELEMENTS = 119  # atomic numbers 1-118 (index 0 unused)
ELEMENT_PROPERTIES = (
    "Z",
    "row",
    "group",
    "X",
    "atomic_radius",
    "atomic_radius_calculated",
    "average_ionic_radius",
    "ionization_energy",
    "electron_affinity",
    "mendeleev_no",
    "molar_volume",
    "melting_point",
    "atomic_mass",
)


def element_property_table() -> np.ndarray:
    """(119, 13) float32 pymatgen element properties (ELEMENT_PROPERTIES), standardized per
    column over the elements; unknown values (and row 0) are 0, the column mean."""
    import warnings

    from pymatgen.core import Element

    table = np.full((N_ELEMENTS, len(ELEMENT_PROPERTIES)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for each property an element lacks
        for z in range(1, N_ELEMENTS):
            element = Element.from_Z(z)
            for column, name in enumerate(ELEMENT_PROPERTIES):
                try:
                    value = getattr(element, name)
                    table[z, column] = float(value) if value is not None else np.nan
                except (AttributeError, KeyError, TypeError, ValueError):
                    pass
    known = table[1:]
    mean, std = np.nanmean(known, axis=0), np.nanstd(known, axis=0)
    standardized = (table - mean) / np.where(std > 0, std, 1.0)
    standardized[0] = 0.0
    return np.nan_to_num(standardized, nan=0.0).astype(np.float32)


class ElementEmbedding(nn.Module):
    """A learned vector per element plus a learned map of tabulated element properties: an
    element seen in few training structures still starts from its chemistry (CGCNN starts
    from such a table too)."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("properties", torch.from_numpy(element_property_table()))
        self.learned = nn.Embedding(N_ELEMENTS, width)
        self.from_properties = nn.Linear(len(ELEMENT_PROPERTIES), width)

    def forward(self, numbers: torch.Tensor) -> torch.Tensor:
        return self.learned(numbers) + self.from_properties(self.properties[numbers])


class AtomEnvironment(nn.Module):
    """Each atom's neighbourhood as a token-wide vector: for atom i, the sum over the atoms j
    of the pair radial profile R_ij (K Gaussians of the distances to j's periodic images)
    times a learned species vector of j, i.e. neighbour distances resolved by neighbour
    chemistry, through an MLP.  It depends on distances and elements only, so every frame of
    a structure gets the same one; the positional encoding says where an atom sits, this
    says what surrounds it."""

    def __init__(self, radial: int, width: int, species: int = 16):
        super().__init__()
        self.species = nn.Linear(width, species)
        self.out = nn.Sequential(
            nn.LayerNorm(radial * species), nn.Linear(radial * species, width), nn.GELU(), nn.Linear(width, width)
        )

    def forward(self, radial: torch.Tensor, elements: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
        """radial (S, N, N, K) pair profiles; elements (S, N, width) element embeddings;
        atoms (S, N) bool, False where padded.  Returns (S, N, width)."""
        return self.out(neighbour_moments(radial, self.species(elements), atoms))


def neighbour_moments(radial: torch.Tensor, species: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    """(S, N, K * C): for each atom i, sum_j radial_ijk * species_jc, the neighbours' vectors
    ``species`` (S, N, C) resolved by the pair profiles ``radial`` (S, N, N, K); padded atoms
    (``atoms`` (S, N) False) contribute nothing."""
    species = species * atoms.unsqueeze(-1).to(species.dtype)
    return torch.einsum("sijk,sjc->sikc", radial, species).flatten(2)


class NeighbourInteraction(nn.Module):
    """One round of message passing between an atom and its neighbours: to each atom's state
    x_i it adds an MLP of [its normalized state, the environment term of its neighbours'
    normalized states] (:class:`AtomEnvironment` with token states for element embeddings),
    i.e. the neighbours' states resolved by distance, read by the receiving atom.  Applied
    after a Transformer layer, it is the per-distance, per-channel exchange that a CGCNN's
    convolutions make and that attention, with a scalar bias per pair and head, does not."""

    def __init__(self, radial: int, width: int, species: int = 16):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.species = nn.Linear(width, species)
        self.moments = nn.LayerNorm(radial * species)
        self.out = nn.Sequential(nn.Linear(radial * species + width, width), nn.GELU(), nn.Linear(width, width))
        nn.init.zeros_(self.out[-1].weight)  # a residual branch that starts as the identity
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, radial: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
        """x (B, N, width) token states; radial (B, N, N, K) pair profiles summed over the
        centring copies of the second atom; atoms (B, N) bool, False where padded.  Returns x
        plus the update, (B, N, width)."""
        state = self.norm(x)
        moments = neighbour_moments(radial, self.species(state), atoms)
        return x + self.out(torch.cat([self.moments(moments), state], dim=-1))


class CompositionStatistics(nn.Module):
    """A structure's chemistry as statistics of its atoms' tabulated element properties
    (:func:`element_property_table`): the mean, minimum, maximum and mean absolute deviation
    of each property over the atoms, as the Magpie descriptors of composition models are.  Mean
    pooling of learned atom tokens averages; it cannot take an extreme, which these give the
    head directly.  They depend on the composition alone, so a supercell or another cell of the
    crystal gets the same ones."""

    STATISTICS = 4

    def forward(self, properties: torch.Tensor, numbers: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
        """properties (119, P) the element table; numbers (S, N) int64; atoms (S, N) bool,
        False where padded.  Returns (S, 4 P)."""
        values = properties[numbers]  # (S, N, P)
        present = atoms.unsqueeze(-1)
        weights = present.to(values.dtype)
        count = weights.sum(1).clamp_min(1.0)
        mean = (values * weights).sum(1) / count
        deviation = ((values - mean.unsqueeze(1)).abs() * weights).sum(1) / count
        low = values.masked_fill(~present, float("inf")).amin(1)
        high = values.masked_fill(~present, float("-inf")).amax(1)
        return torch.cat([mean, low, high, deviation], dim=-1)


def atomic_radius(element) -> float:
    """pymatgen's atomic radius of ``element`` (Angstrom), or its calculated radius, then its
    van der Waals radius, for elements without one (the noble gases)."""
    # One property at a time: pymatgen warns on each missing one it is asked for (Ce, La, Pu ...
    # have no calculated radius), so asking only as far as needed keeps logs quiet.
    for name in ("atomic_radius", "atomic_radius_calculated", "van_der_waals_radius"):
        radius = getattr(element, name)
        if radius is not None:
            return float(radius)
    raise ValueError(f"no radius for {element}")


class ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PositionalEncoder(nn.Module):
    """The positional encoder: one for all 230 groups, from an atom's slot features
    (:class:`basisdb.model.data.StructureFeaturizer`) to its positional encoding.

    Position branch: the group's real invariant features (in slots), optionally plus a
    learned embedding of the group, through residual blocks.  Orbit-distance pretraining
    uses the embedding (every group is seen there); property models do without it by
    default: with a few thousand structures a per-group vector mostly memorizes, and a
    group absent from training would keep a random one.  Lattice branch: rotation-invariant lattice
    features through an MLP.  The two combine multiplicatively, per atom.
    """

    def __init__(
        self,
        n_slots: int,
        hidden: int,
        out: int,
        blocks: int,
        dropout: float = 0.0,
        group_embedding: bool = True,
        lattice_branch: bool = True,
    ):
        super().__init__()
        self.position_in = nn.Linear(n_slots, hidden)
        self.group_embedding = nn.Embedding(N_GROUP_EMBEDDINGS, hidden) if group_embedding else None
        self.position_blocks = nn.Sequential(*[ResidualBlock(hidden, dropout) for _ in range(blocks)])
        self.lattice_branch = (
            nn.Sequential(nn.Linear(LATTICE_FEATURES, hidden), nn.GELU(), nn.Linear(hidden, hidden))
            if lattice_branch
            else None
        )  # None: an ablation, the positions alone
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, out))

    def forward(
        self,
        features: torch.Tensor,
        ita_numbers: torch.Tensor,
        lattice: torch.Tensor,
        structure: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """features (..., A, n_slots) or (..., n_slots) float32; ita_numbers (...,) int64,
        the space group of each structure; lattice (..., 6) lattice features.

        With ``structure`` (R,) int64, features are R rows (R, n_slots) of S structures,
        ita_numbers (S,) and lattice (S, 6) one per structure, and ``structure`` the structure
        of each row: the group and lattice terms are computed once per structure, not once per
        row (a structure has 31 rows on average on flla_2015)."""
        if structure is None:
            extra = features.dim() - ita_numbers.dim() - 1  # atom axes beyond the structure axes
            view = lambda t: t.reshape(t.shape[: ita_numbers.dim()] + (1,) * extra + t.shape[ita_numbers.dim() :])  # noqa: E731
        else:
            view = lambda t: t[structure]  # noqa: E731
        h = self.position_in(features)
        if self.group_embedding is not None:
            h = h + view(self.group_embedding(ita_numbers))
        h = self.position_blocks(h)
        if self.lattice_branch is not None:
            h = h * view(self.lattice_branch(lattice))
        return self.out(h)


def segment_mean(
    values: torch.Tensor, segment: torch.Tensor, n_segments: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """(n_segments, ...) mean of the rows of ``values`` (R, ...) in each segment, ``segment``
    (R,) int64 giving each row's, weighted by ``weights`` (R,) when given: the frames of a
    structure averaged into one prediction, or a graph's atoms pooled into one vector."""
    weights = (
        torch.ones(len(segment), dtype=values.dtype, device=values.device)
        if weights is None
        else weights.to(values.dtype)
    )
    shape = (len(segment),) + (1,) * (values.dim() - 1)
    total = torch.zeros((n_segments,) + values.shape[1:], dtype=values.dtype, device=values.device).index_add_(
        0, segment, values * weights.reshape(shape)
    )
    norm = torch.zeros(n_segments, dtype=values.dtype, device=values.device).index_add_(0, segment, weights)
    return total / norm.reshape((n_segments,) + shape[1:])
