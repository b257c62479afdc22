"""The Crystal Fourier Transformer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .data import Batch
from .modules import PositionalEncoder

__all__ = ["CFTConfig", "CrystalFourierTransformer"]


@dataclass(frozen=True)
class CFTConfig:
    """Hyperparameters of the CFT.

    Attributes:
        radius: truncation radius of the basis (must be in the store).
        n_slots: input width (largest frequency set at that radius).
        d_model: width of atom tokens.
        hidden: width of the positional encoder's residual blocks.
        encoder_blocks: residual blocks of the positional encoder.
        layers, heads, feedforward: the Transformer encoder.
        dropout: dropout everywhere.
    """

    radius: float = 4.0
    n_slots: int = 320
    d_model: int = 64
    hidden: int = 128
    encoder_blocks: int = 2
    layers: int = 2
    heads: int = 4
    feedforward: int = 128
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class CrystalFourierTransformer(nn.Module):
    """Element embedding + positional encoding per atom, a Transformer encoder over the
    atoms, masked mean pooling and an MLP head (predicting normalized targets)."""

    def __init__(self, config: CFTConfig):
        super().__init__()
        self.config = config
        self.encoder = PositionalEncoder(config.n_slots, config.hidden, config.d_model, config.encoder_blocks, config.dropout)
        self.element = nn.Embedding(119, config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.heads, config.feedforward, config.dropout, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(config.d_model), nn.Linear(config.d_model, config.hidden), nn.GELU(), nn.Linear(config.hidden, 1))

    def atom_states(self, batch: Batch) -> torch.Tensor:
        """(B, N, d_model) per-atom outputs of the Transformer (padding rows are garbage)."""
        tokens = self.element(batch.numbers) + self.encoder(batch.features, batch.group, batch.lattice)
        return self.transformer(tokens, src_key_padding_mask=~batch.mask)

    def forward(self, batch: Batch) -> torch.Tensor:
        """(B,) normalized predictions, one per sequence (frame)."""
        states = self.atom_states(batch)
        weights = batch.mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.head(pooled).squeeze(-1)


def average_over_frames(values: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of per-sequence values (B, ...) over the frames of each structure: (n, ...)."""
    total = torch.zeros((n,) + values.shape[1:], dtype=values.dtype, device=values.device).index_add_(0, owner, values)
    counts = torch.bincount(owner, minlength=n).to(values.dtype).reshape((n,) + (1,) * (values.dim() - 1))
    return total / counts
