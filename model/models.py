"""The Crystal Fourier Transformer."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import torch
from torch import nn

from .data import RADIAL_CENTRES, Batch, SizeGroups
from .modules import (
    ELEMENT_PROPERTIES,
    AtomEnvironment,
    CompositionStatistics,
    ElementEmbedding,
    NeighbourInteraction,
    PositionalEncoder,
)

__all__ = [
    "CFTConfig",
    "CrystalFourierTransformer",
    "BiasedTransformer",
    "attention_dropping_copies",
]


@dataclass(frozen=True)
class CFTConfig:
    """Hyperparameters of the CFT; the defaults are the benchmark recipe (BENCHMARKS.md).

    Attributes:
        radius: truncation radius of the basis (must be in the store).
        n_slots: input width (largest frequency set at that radius).
        d_model: width of atom tokens.
        hidden: width of the positional encoder's residual blocks; 128 since 2026-12-04
            (a third fewer prediction FLOPs than the 256 before it, as accurate).
        encoder_blocks: residual blocks of the positional encoder.
        layers, heads, feedforward: the Transformer over the atoms.
        dropout: dropout everywhere.
        group_embedding: add a learned embedding of the space group to the positional
            encoding (see :class:`basisdb.model.modules.PositionalEncoder`).
        radial_bias: bias attention by a learned linear function (per head) of each atom
            pair's radial profile (:func:`basisdb.model.data.pair_radial`).
        lattice_branch: scale the positional encoding by a function of the lattice
            (:class:`basisdb.model.modules.PositionalEncoder`); False is an ablation.
        positional_encoding: give each atom's token its symmetry-adapted positional encoding;
            False is an ablation: tokens are elements (and environments) alone, and the
            frames, which differ in positions only, all give the same prediction.
        environment: add to each atom's token its neighbourhood, neighbour distances
            resolved by neighbour species (:class:`basisdb.model.modules.AtomEnvironment`);
            the recipe since 2026-12-02, False is the recipe before it.
        interactions: after every Transformer layer, one round of message passing between each
            atom and its neighbours' states, resolved by distance
            (:class:`basisdb.model.modules.NeighbourInteraction`).
        composition: give the head, beside the pooled atoms, statistics of the atoms' element
            properties (:class:`basisdb.model.modules.CompositionStatistics`).
        position_dropout: in training, leave out each structure's positional encoding with this
            probability, so that the model also predicts from elements and environments alone;
            in prediction, a structure of a space group it was not trained on goes without
            positions (:meth:`CrystalFourierTransformer.positions_used`). 0 (the recipe): every
            structure has its positions.
    """

    radius: float = 4.0
    n_slots: int = 320
    d_model: int = 128
    hidden: int = 128
    encoder_blocks: int = 3
    layers: int = 2
    heads: int = 4
    feedforward: int = 128
    dropout: float = 0.1
    group_embedding: bool = False
    radial_bias: bool = True
    lattice_branch: bool = True
    positional_encoding: bool = True
    environment: bool = True
    interactions: bool = False
    composition: bool = False
    position_dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class CrystalFourierTransformer(nn.Module):
    """Element embedding + positional encoding per atom, a Transformer over the
    atoms (attention biased by the atom pairs' radial profiles), masked mean
    pooling and an MLP head (predicting normalized targets).

    The symmetry-adapted positional encoding says where an atom sits relative to the
    group's symmetry elements; the radial bias says at which distances, in Angstrom, each
    atom sees the images of each other atom, which fractional coordinates leave to the
    lattice branch to infer.

    It runs on the primitive cell's atoms (one per centring class of the standardized cell):
    a centring translation maps the crystal onto itself, so its outputs, mean pooling and
    attention are those of the whole standardized cell (:meth:`pair_bias`), with a quarter of
    its atoms on a face-centred cell."""

    def __init__(self, config: CFTConfig):
        super().__init__()
        self.config = config
        self.encoder = (
            PositionalEncoder(
                config.n_slots,
                config.hidden,
                config.d_model,
                config.encoder_blocks,
                config.dropout,
                config.group_embedding,
                config.lattice_branch,
            )
            if config.positional_encoding
            else None
        )
        self.element = ElementEmbedding(config.d_model)
        self.transformer = BiasedTransformer(
            config.d_model, config.heads, config.feedforward, config.dropout, config.layers
        )
        head_in = config.d_model
        if config.composition:
            self.composition = CompositionStatistics()
            head_in += CompositionStatistics.STATISTICS * len(ELEMENT_PROPERTIES)
        self.head = nn.Sequential(
            nn.LayerNorm(head_in),
            nn.Linear(head_in, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, 1),
        )
        if config.radial_bias:
            self.radial_bias = nn.Linear(len(RADIAL_CENTRES), config.heads)
            nn.init.zeros_(self.radial_bias.weight)  # starts as plain attention
            nn.init.zeros_(self.radial_bias.bias)
        if config.environment:
            self.environment = AtomEnvironment(len(RADIAL_CENTRES), config.d_model)
        if config.interactions:
            self.interactions = nn.ModuleList(
                NeighbourInteraction(len(RADIAL_CENTRES), config.d_model) for _ in range(config.layers)
            )
        if config.position_dropout > 0:
            # (231,) bool by ITA number: the groups whose positions the model trusts; every group
            # until record_training_groups says which it was trained on. A buffer, so checkpoints keep it.
            self.register_buffer("trained_groups", torch.ones(231, dtype=torch.bool))

    def record_training_groups(self, groups) -> None:
        """Remember the space groups (ITA numbers) of the structures the model is about to be
        trained on; with ``position_dropout``, it predicts every other group without positions."""
        if self.config.position_dropout > 0:
            seen = torch.zeros_like(self.trained_groups)
            seen[torch.as_tensor(list(groups), dtype=torch.long, device=seen.device)] = True
            self.trained_groups.copy_(seen)

    def predicts_with_positions(self, group: int) -> bool:
        """Whether a structure of space group ``group`` (ITA number) is predicted with its
        positional encoding (see :meth:`positions_used`)."""
        if self.encoder is None:
            return False
        return self.config.position_dropout == 0 or bool(self.trained_groups[group])

    def positions_used(self, batch: Batch) -> torch.Tensor:
        """(S,) bool, whether each structure's tokens get its positional encoding.

        Always, unless ``position_dropout`` is set; then, in training, each structure's is left
        out with that probability, and in prediction, those of space groups the model was not
        trained on are: an unseen group's basis functions fill the encoder's input slots with
        functions it never learned, while elements, environments and distances look alike in
        every group."""
        structures = len(batch.ita_numbers)
        if self.config.position_dropout == 0:
            return torch.ones(structures, dtype=torch.bool, device=batch.ita_numbers.device)
        if self.training:
            return torch.rand(structures, device=batch.ita_numbers.device) >= self.config.position_dropout
        return self.trained_groups[batch.ita_numbers]

    def atom_states(self, batch: Batch, first: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, d_model) per-atom outputs of the Transformer, one sequence per frame (padding
        rows are garbage); ``first``: ``batch.first_sequences()``, when the caller has it already."""
        first = batch.first_sequences() if first is None else first
        atoms = batch.mask[first]  # (S, N)
        elements = self.element(batch.numbers[first])  # a structure's frames share their atoms
        tokens = elements[batch.owner]
        if self.encoder is not None:  # once per distinct feature row, not per atom and frame
            positional = self.encoder(batch.rows, batch.ita_numbers, batch.lattice, structure=batch.row_structure)
            if self.config.position_dropout > 0:
                positional = positional * self.positions_used(batch)[batch.row_structure, None].to(positional.dtype)
            tokens = tokens + positional[batch.row_of]
        # One additive attention mask (sequences, heads, N, N): -inf on padded keys, plus the
        # radial bias, built once per structure and shared by its frames.
        n = batch.mask.shape[1]
        if self.config.environment:  # once per structure, shared by its frames; summed over centring copies
            tokens = tokens + self.environment(batch.radial.sum(3), elements, atoms)[batch.owner]
        padding = torch.zeros(atoms.shape, dtype=tokens.dtype, device=tokens.device).masked_fill_(~atoms, float("-inf"))
        mask = padding[:, None, None, :].expand(-1, self.config.heads, n, n)
        per_copy = None  # (S, N, N, C, heads): the bias of each centring copy of the second atom
        if self.config.radial_bias:
            per_copy = self.radial_bias(batch.radial)
            if per_copy.shape[3] > 1:  # a padded copy weighs nothing
                per_copy = per_copy.masked_fill(~batch.copies[:, None, None, :, None], float("-inf"))
            mask = mask + self.pair_bias(per_copy)
        shares = None
        if self.training and self.config.dropout > 0 and batch.copies.shape[1] > 1:
            shares = self.copy_shares(per_copy, batch.copies)[batch.owner]
        after = None
        if self.config.interactions:  # on each sequence's states: frames differ
            radial, frame_atoms = batch.radial.sum(3)[batch.owner], atoms[batch.owner]
            after = [partial(step, radial=radial, atoms=frame_atoms) for step in self.interactions]
        return self.transformer(tokens, mask[batch.owner], shares, after)

    @staticmethod
    def pair_bias(per_copy: torch.Tensor) -> torch.Tensor:
        """(S, heads, N, N) attention bias of each structure's atom pairs, from the bias
        ``per_copy`` (S, N, N, C, heads) of each centring copy of the second atom (-inf for
        padded copies).

        The model sees one atom per centring class: in the standardized cell, the C atoms
        of a class have the same key and value, so attending to them is attending to one
        atom with the summed weight: its bias is the log of the sum over the copies of
        exp(bias), which gives exactly the attention over the whole cell."""
        bias = per_copy[:, :, :, 0] if per_copy.shape[3] == 1 else per_copy.logsumexp(3)
        return bias.permute(0, 3, 1, 2)

    @staticmethod
    def copy_shares(per_copy: torch.Tensor | None, copies: torch.Tensor) -> torch.Tensor:
        """(S, heads, N, N, C) each centring copy's share of its class's attention weight
        (the softmax of ``per_copy``, as :meth:`pair_bias` takes it, over the copies; equal
        shares without a radial bias, as (S, 1, 1, 1, C)): attention dropout drops each copy
        on its own with these, as it does in the whole standardized cell
        (:func:`attention_dropping_copies`)."""
        if per_copy is None:
            equal = copies.float()
            return (equal / equal.sum(1, keepdim=True))[:, None, None, None, :]
        return per_copy.softmax(3).permute(0, 4, 1, 2, 3)

    def forward(self, batch: Batch | SizeGroups) -> torch.Tensor:
        """(B,) normalized predictions, one per sequence (frame); for :class:`SizeGroups`,
        the parts' predictions one after another."""
        if isinstance(batch, SizeGroups):
            return torch.cat([self(part) for part in batch.parts])
        first = batch.first_sequences()
        states = self.atom_states(batch, first)
        weights = batch.mask[first][batch.owner].unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        if self.config.composition:  # once per structure, shared by its frames
            chemistry = self.composition(self.element.properties, batch.numbers[first], batch.mask[first])
            pooled = torch.cat([pooled, chemistry[batch.owner]], dim=-1)
        return self.head(pooled).squeeze(-1)


class BiasedTransformer(nn.Module):
    """A pre-norm Transformer (self-attention only) whose attention takes an additive mask
    per sequence and head, through PyTorch's fused ``scaled_dot_product_attention``.  Its parameters are
    named as in ``nn.TransformerEncoder`` of ``nn.TransformerEncoderLayer(norm_first=True)``,
    whose mask path copies the (B * heads, N, N) mask several times."""

    def __init__(self, width: int, heads: int, feedforward: int, dropout: float, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(_BiasedLayer(width, heads, feedforward, dropout) for _ in range(layers))

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        shares: torch.Tensor | None = None,
        after: list | None = None,
    ) -> torch.Tensor:
        """x (B, N, width); mask (B, heads, N, N) float, added to the attention logits;
        shares (B, heads, N, N, C) or None: in training, attention dropout drops each centring
        copy of a key on its own (:func:`attention_dropping_copies`); after: one function of
        the states per layer, applied to its output (the model's neighbour interactions), or None."""
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, shares)
            if after is not None:
                x = after[i](x)
        return x


class _BiasedLayer(nn.Module):
    def __init__(self, width: int, heads: int, feedforward: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)  # holds the projections
        self.linear1, self.linear2 = nn.Linear(width, feedforward), nn.Linear(feedforward, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, shares: torch.Tensor | None = None) -> torch.Tensor:
        b, n, width = x.shape
        attention = self.self_attn
        qkv = nn.functional.linear(self.norm1(x), attention.in_proj_weight, attention.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        dropout = attention.dropout if self.training else 0.0
        if dropout > 0 and shares is not None:
            mixed = attention_dropping_copies(q, k, v, mask, shares, dropout)
        else:
            mixed = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        x = x + self.dropout1(attention.out_proj(mixed.transpose(1, 2).reshape(b, n, width)))
        return x + self.dropout2(self.linear2(self.dropout(nn.functional.relu(self.linear1(self.norm2(x))))))


def attention_dropping_copies(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, shares: torch.Tensor, dropout: float
) -> torch.Tensor:
    """Attention (q, k, v (B, heads, N, d); mask (B, heads, N, N) additive) whose dropout
    drops each of a key's C centring copies on its own, with probability ``dropout``: a key
    keeps the ``shares`` (B, heads, N, N, C) of its weight that its kept copies carry.  This
    is dropout in attention over the whole standardized cell, where the copies are keys of
    their own; dropping a class at once would drop all of them together."""
    weights = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + mask, dim=-1)
    kept = torch.empty(*weights.shape, shares.shape[-1], dtype=weights.dtype, device=weights.device)
    kept.bernoulli_(1.0 - dropout)
    return (weights * (kept * shares).sum(-1) / (1.0 - dropout)) @ v
