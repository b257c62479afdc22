"""Building blocks: residual MLPs and the shared positional encoder."""

from __future__ import annotations

import torch
from torch import nn

from .data import LATTICE_FEATURES

__all__ = ["ResidualBlock", "PositionalEncoder", "N_GROUP_EMBEDDINGS"]

N_GROUP_EMBEDDINGS = 231  # ITA numbers 1-230 (index 0 unused)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PositionalEncoder(nn.Module):
    """One encoder for all 230 groups.

    Position branch: the group's real invariant features (in slots) plus a learned embedding
    of the group, through residual blocks.  Lattice branch: rotation-invariant lattice
    features through an MLP.  The two combine multiplicatively, per atom.
    """

    def __init__(self, n_slots: int, hidden: int, out: int, blocks: int, dropout: float = 0.0):
        super().__init__()
        self.position_in = nn.Linear(n_slots, hidden)
        self.group_embedding = nn.Embedding(N_GROUP_EMBEDDINGS, hidden)
        self.position_blocks = nn.Sequential(*[ResidualBlock(hidden, dropout) for _ in range(blocks)])
        self.lattice_branch = nn.Sequential(
            nn.Linear(LATTICE_FEATURES, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, out))

    def forward(self, features: torch.Tensor, group: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
        """features (..., A, n_slots) or (..., n_slots); group (...,); lattice (..., 6)."""
        extra = features.dim() - group.dim() - 1  # atom axes beyond the structure axes
        view = lambda t: t.reshape(t.shape[: group.dim()] + (1,) * extra + t.shape[group.dim() :])  # noqa: E731
        h = self.position_in(features) + view(self.group_embedding(group))
        h = self.position_blocks(h)
        return self.out(h * view(self.lattice_branch(lattice)))
