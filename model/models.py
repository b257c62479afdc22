"""The Crystal Fourier Transformer."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .data import RADIAL_CENTRES, Batch
from .modules import ElementEmbedding, PositionalEncoder

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
        group_embedding: add a learned embedding of the space group to the positional
            encoding (see :class:`model.modules.PositionalEncoder`).
        radial_bias: bias attention by a learned linear function (per head) of each atom
            pair's radial profile (:func:`model.data.pair_radial`).
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
    group_embedding: bool = False
    radial_bias: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class CrystalFourierTransformer(nn.Module):
    """Element embedding + positional encoding per atom, a Transformer encoder over the
    atoms (attention biased by the atom pairs' radial profiles), masked mean
    pooling and an MLP head (predicting normalized targets).

    The symmetry-adapted positional encoding says where an atom sits relative to the
    group's symmetry elements; the radial bias says at which distances, in Angstrom, each
    atom sees the images of each other atom, which fractional coordinates leave to the
    lattice branch to infer."""

    def __init__(self, config: CFTConfig):
        super().__init__()
        self.config = config
        self.encoder = PositionalEncoder(config.n_slots, config.hidden, config.d_model, config.encoder_blocks, config.dropout, config.group_embedding)
        self.element = ElementEmbedding(config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.heads, config.feedforward, config.dropout, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(config.d_model), nn.Linear(config.d_model, config.hidden), nn.GELU(), nn.Linear(config.hidden, 1))
        if config.radial_bias:
            self.radial_bias = nn.Linear(len(RADIAL_CENTRES), config.heads)
            nn.init.zeros_(self.radial_bias.weight)  # starts as plain attention
            nn.init.zeros_(self.radial_bias.bias)

    def atom_states(self, batch: Batch) -> torch.Tensor:
        """(B, N, d_model) per-atom outputs of the Transformer (padding rows are garbage)."""
        tokens = self.element(batch.numbers) + self.encoder(batch.features, batch.group, batch.lattice)
        padding = torch.zeros(batch.mask.shape, dtype=tokens.dtype, device=tokens.device).masked_fill(~batch.mask, float("-inf"))
        bias = None
        if self.config.radial_bias:
            # (B * heads, N, N) additive bias; computed once per structure, shared by its frames
            per_structure = self.radial_bias(batch.radial).permute(0, 3, 1, 2)
            bias = per_structure[batch.owner].reshape(-1, *batch.radial.shape[1:3])
        with _without_attention_fast_path(bias is not None):
            return self.transformer(tokens, mask=bias, src_key_padding_mask=padding)

    def forward(self, batch: Batch) -> torch.Tensor:
        """(B,) normalized predictions, one per sequence (frame)."""
        states = self.atom_states(batch)
        weights = batch.mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.head(pooled).squeeze(-1)


@contextlib.contextmanager
def _without_attention_fast_path(active: bool):
    """PyTorch's inference fast path for attention returns NaN with a per-batch float
    mask (torch 2.13, eval mode under no_grad); the regular path is exact."""
    previous = torch.backends.mha.get_fastpath_enabled()
    if active:
        torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def average_over_frames(values: torch.Tensor, owner: torch.Tensor, n: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-sequence values (B, ...) over the frames of each structure: (n, ...),
    weighted by ``weights`` (B,) when given."""
    weights = torch.ones(len(owner), dtype=values.dtype, device=values.device) if weights is None else weights.to(values.dtype)
    shape = (len(owner),) + (1,) * (values.dim() - 1)
    total = torch.zeros((n,) + values.shape[1:], dtype=values.dtype, device=values.device).index_add_(0, owner, values * weights.reshape(shape))
    norm = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, owner, weights)
    return total / norm.reshape((n,) + shape[1:])
