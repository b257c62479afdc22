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
    CellStatistics,
    CompositionStatistics,
    ElementEmbedding,
    NeighbourInteraction,
    PositionalEncoder,
)

__all__ = [
    "FRAME_AVERAGES",
    "CFTConfig",
    "CrystalFourierTransformer",
    "BiasedTransformer",
    "attention_dropping_copies",
    "attention_with_pair_filter",
]

# where the CFT averages a structure's frames (CFTConfig.frame_average)
FRAME_AVERAGES = ("predictions", "encodings")
# per head, the rank of the bilinear form of CFTConfig.frame_pairs
FRAME_PAIR_RANK = 16


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
        interaction_gates: with ``interactions``, gate what each neighbour sends by a function
            of both atoms' states and their distances (a CGCNN convolution's edge gating).
        composition: give the head, beside the pooled atoms, statistics of the atoms' element
            properties (:class:`basisdb.model.modules.CompositionStatistics`).
        cell_statistics: give the head, beside the pooled atoms, the cell's volume per atom,
            density, packing fraction and atoms in the primitive cell
            (:class:`basisdb.model.modules.CellStatistics`).
        pair_filter: in attention, scale each value by a learned linear function (per head and
            channel) of the pair's radial profile, as a continuous-filter convolution does, so
            that what an atom takes from another depends on how far apart they are
            (:func:`attention_with_pair_filter`).
        position_dropout: in training, leave out each structure's positional encoding with this
            probability, so that the model also predicts from elements and environments alone;
            in prediction, a structure of a space group it was not trained on goes without
            positions (:meth:`CrystalFourierTransformer.positions_used`). 0 (the recipe): every
            structure has its positions.
        frame_average: where a structure's frames are averaged, one of :data:`FRAME_AVERAGES`.
            ``"predictions"`` (the recipe): the Transformer runs on every frame and the
            prediction is the frames' weighted average.  ``"encodings"``: each atom's token
            takes the weighted average of its positional encodings over the frames, and the
            Transformer runs once per structure; as invariant (the frames of a crystal are the
            same set however it is described), a frame's cost instead of 4-6 frames', but the
            tokens no longer say which frame placed one atom where another is (the pair
            profiles still do). Trained on every frame, whatever the training's ``frames``.
        frame_pairs: with ``frame_average="encodings"``, bias attention, per head, by the
            frames' weighted average of a learned bilinear form of the two atoms' positional
            encodings in the same frame (:meth:`CrystalFourierTransformer.frame_pair_bias`):
            what averaging the encodings loses, where one atom sits relative to another.
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
    interaction_gates: bool = False
    composition: bool = False
    cell_statistics: bool = False
    pair_filter: bool = False
    position_dropout: float = 0.0
    frame_average: str = "predictions"
    frame_pairs: bool = False

    def __post_init__(self):
        if self.frame_pairs and self.frame_average != "encodings":
            raise ValueError(
                "frame_pairs relate the frames' encodings that are averaged: set frame_average='encodings'"
            )
        if self.frame_average not in FRAME_AVERAGES:
            raise ValueError(f"frame_average must be one of {FRAME_AVERAGES}, got {self.frame_average!r}")
        if self.interaction_gates and not self.interactions:
            raise ValueError("interaction_gates gate the neighbour interactions: set interactions=True as well")

    def to_dict(self) -> dict:
        return asdict(self)

    def training_frames(self, requested: str) -> str:
        """The origin frames a regression's loss should see of a structure
        (:class:`basisdb.model.training.TrainConfig` ``frames``): every one (``"all"``) when
        the model averages their encodings, whose average a single frame is not; else ``requested``."""
        return "all" if self.frame_average == "encodings" else requested


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
            config.d_model,
            config.heads,
            config.feedforward,
            config.dropout,
            config.layers,
            len(RADIAL_CENTRES) if config.pair_filter else None,
        )
        head_in = config.d_model
        if config.composition:
            self.composition = CompositionStatistics()
            head_in += CompositionStatistics.STATISTICS * len(ELEMENT_PROPERTIES)
        if config.cell_statistics:
            self.cell = CellStatistics()
            head_in += CellStatistics.STATISTICS
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
        if config.frame_pairs:  # (d_model, heads * FRAME_PAIR_RANK) each; starts as no bias
            self.pair_query = nn.Linear(config.d_model, config.heads * FRAME_PAIR_RANK, bias=False)
            self.pair_key = nn.Linear(config.d_model, config.heads * FRAME_PAIR_RANK, bias=False)
            nn.init.zeros_(self.pair_key.weight)
        if config.environment:
            self.environment = AtomEnvironment(len(RADIAL_CENTRES), config.d_model)
        if config.interactions:
            self.interactions = nn.ModuleList(
                NeighbourInteraction(len(RADIAL_CENTRES), config.d_model, gates=config.interaction_gates)
                for _ in range(config.layers)
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

    def training_frames(self, requested: str) -> str:
        """:meth:`CFTConfig.training_frames` of this model's configuration."""
        return self.config.training_frames(requested)

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
        """(B, N, d_model) per-atom outputs of the Transformer (padding rows are garbage);
        ``first``: ``batch.first_sequences()``, when the caller has it already.  With
        ``frame_average="encodings"`` the frames of a structure share their states."""
        states, owner = self.sequence_states(batch, first)
        return states if owner is batch.owner else states[batch.owner]

    def sequence_states(self, batch: Batch, first: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The Transformer's outputs (sequences, N, d_model) and the structure (sequences,) of
        each sequence it ran on: each frame of each structure (``owner`` is ``batch.owner``), or
        with ``frame_average="encodings"`` each structure once."""
        first = batch.first_sequences() if first is None else first
        atoms = batch.mask[first]  # (S, N)
        elements = self.element(batch.numbers[first])  # a structure's frames share their atoms
        averaged = self.config.frame_average == "encodings"
        owner = torch.arange(len(first), device=first.device) if averaged else batch.owner
        tokens = elements[owner]
        frame_pairs = None  # (S, heads, N, N), with CFTConfig.frame_pairs
        if self.encoder is not None:  # once per distinct feature row, not per atom and frame
            positional = self.encoder(batch.rows, batch.ita_numbers, batch.lattice, structure=batch.row_structure)
            if self.config.position_dropout > 0:
                positional = positional * self.positions_used(batch)[batch.row_structure, None].to(positional.dtype)
            if self.config.frame_pairs:
                frame_pairs = self.frame_pair_bias(positional, batch)
            positional = positional[batch.row_of]
            tokens = tokens + (self.frames_averaged(positional, batch) if averaged else positional)
        # One additive attention mask (sequences, heads, N, N): -inf on padded keys, plus the
        # radial bias, built once per structure and shared by its frames.
        n = batch.mask.shape[1]
        if self.config.environment:  # once per structure, shared by its frames; summed over centring copies
            tokens = tokens + self.environment(batch.radial.sum(3), elements, atoms)[owner]
        padding = torch.zeros(atoms.shape, dtype=tokens.dtype, device=tokens.device).masked_fill_(~atoms, float("-inf"))
        mask = padding[:, None, None, :].expand(-1, self.config.heads, n, n)
        per_copy = None  # (S, N, N, C, heads): the bias of each centring copy of the second atom
        if self.config.radial_bias:
            per_copy = self.radial_bias(batch.radial)
            if per_copy.shape[3] > 1:  # a padded copy weighs nothing
                per_copy = per_copy.masked_fill(~batch.copies[:, None, None, :, None], float("-inf"))
            mask = mask + self.pair_bias(per_copy)
        if frame_pairs is not None:
            mask = mask + frame_pairs
        shares, radial = None, None
        if self.config.pair_filter:  # each copy has its own distances, so its own share of the weight
            shares, radial = self.copy_shares(per_copy, batch.copies)[owner], batch.radial[owner]
        elif self.training and self.config.dropout > 0 and batch.copies.shape[1] > 1:
            shares = self.copy_shares(per_copy, batch.copies)[owner]
        after = None
        if self.config.interactions:  # on each sequence's states: frames differ
            # ungated, only the sum over centring copies counts: it goes as one copy
            per_pair = batch.radial if self.config.interaction_gates else batch.radial.sum(3, keepdim=True)
            frame_radial, frame_atoms = per_pair[owner], atoms[owner]
            after = [partial(step, radial=frame_radial, atoms=frame_atoms) for step in self.interactions]
        return self.transformer(tokens, mask[owner], shares, radial, after), owner

    @staticmethod
    def frames_averaged(tokens: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(S, ...) each structure's per-frame ``tokens`` (B, ...) averaged over its frames
        with their weights."""
        weight = batch.weight.to(tokens.dtype)
        structures = len(batch.ita_numbers)
        total = torch.zeros(structures, dtype=tokens.dtype, device=tokens.device).index_add_(0, batch.owner, weight)
        summed = torch.zeros((structures, *tokens.shape[1:]), dtype=tokens.dtype, device=tokens.device)
        spread = (-1,) + (1,) * (tokens.dim() - 1)
        summed.index_add_(0, batch.owner, tokens * weight.view(spread))
        return summed / total.view(spread)

    def frame_pair_bias(self, positional: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(S, heads, N, N) the attention bias of :attr:`CFTConfig.frame_pairs`: for atoms i
        and j, the weighted average over the frames f of ``q(p_fi) . k(p_fj) / sqrt(rank)``,
        p_fi being atom i's positional encoding in frame f (``positional`` (R, d_model), one
        per distinct row) and q, k learned maps to ``heads`` x :data:`FRAME_PAIR_RANK`.  The
        frames of a crystal are one set however it is described, so the average is invariant."""
        heads = self.config.heads
        query = self.pair_query(positional).view(len(positional), heads, FRAME_PAIR_RANK)[batch.row_of]
        key = self.pair_key(positional).view(len(positional), heads, FRAME_PAIR_RANK)[batch.row_of]
        per_frame = torch.einsum("bihr,bjhr->bhij", query, key) * FRAME_PAIR_RANK**-0.5
        return self.frames_averaged(per_frame, batch)

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
        states, owner = self.sequence_states(batch, first)
        weights = batch.mask[first][owner].unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        if self.config.composition:  # once per structure, shared by its frames
            chemistry = self.composition(self.element.properties, batch.numbers[first], batch.mask[first])
            pooled = torch.cat([pooled, chemistry[owner]], dim=-1)
        if self.config.cell_statistics:
            packing = self.cell(batch.lattice, batch.numbers[first], batch.mask[first], batch.copies)
            pooled = torch.cat([pooled, packing[owner]], dim=-1)
        out = self.head(pooled).squeeze(-1)
        return out if owner is batch.owner else out[batch.owner]  # one per sequence, frames alike


class BiasedTransformer(nn.Module):
    """A pre-norm Transformer (self-attention only) whose attention takes an additive mask
    per sequence and head, through PyTorch's fused ``scaled_dot_product_attention``.  Its parameters are
    named as in ``nn.TransformerEncoder`` of ``nn.TransformerEncoderLayer(norm_first=True)``,
    whose mask path copies the (B * heads, N, N) mask several times."""

    def __init__(
        self, width: int, heads: int, feedforward: int, dropout: float, layers: int, pair_filter: int | None = None
    ):
        """``pair_filter``: the K of the radial profiles that filter the values in attention
        (:func:`attention_with_pair_filter`), None for plain values."""
        super().__init__()
        self.layers = nn.ModuleList(
            _BiasedLayer(width, heads, feedforward, dropout, pair_filter) for _ in range(layers)
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        shares: torch.Tensor | None = None,
        radial: torch.Tensor | None = None,
        after: list | None = None,
    ) -> torch.Tensor:
        """x (B, N, width); mask (B, heads, N, N) float, added to the attention logits;
        shares (B, heads, N, N, C) or None: in training, attention dropout drops each centring
        copy of a key on its own (:func:`attention_dropping_copies`); radial (B, N, N, C, K):
        the pair profiles, given exactly when the layers filter their values by them
        (``pair_filter``); after: one function of the states per layer, applied to its output
        (the model's neighbour interactions), or None."""
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, shares, radial)
            if after is not None:
                x = after[i](x)
        return x


class _BiasedLayer(nn.Module):
    def __init__(self, width: int, heads: int, feedforward: int, dropout: float, pair_filter: int | None = None):
        super().__init__()
        self.heads = heads
        self.filter_weight = self.filter_bias = None
        if pair_filter is not None:  # starts as plain attention: a filter of ones
            self.filter_weight = nn.Parameter(torch.zeros(heads, pair_filter, width // heads))
            self.filter_bias = nn.Parameter(torch.ones(heads, width // heads))
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)  # holds the projections
        self.linear1, self.linear2 = nn.Linear(width, feedforward), nn.Linear(feedforward, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        shares: torch.Tensor | None = None,
        radial: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, n, width = x.shape
        attention = self.self_attn
        qkv = nn.functional.linear(self.norm1(x), attention.in_proj_weight, attention.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        dropout = attention.dropout if self.training else 0.0
        if self.filter_weight is not None:
            mixed = attention_with_pair_filter(
                q, k, v, mask, shares, radial, self.filter_weight, self.filter_bias, dropout
            )
        elif dropout > 0 and shares is not None:
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


def attention_with_pair_filter(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    shares: torch.Tensor,
    radial: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    dropout: float,
) -> torch.Tensor:
    """Attention whose value of key j for query i is v_j times a filter of the pair's radial
    profile, (radial_ij @ weight + bias) per head and channel: the continuous-filter
    convolution of SchNet inside attention.  q, k, v (B, heads, N, d); mask (B, heads, N, N)
    additive; shares (B, heads, N, N, C) or broadcastable: each centring copy of a key's share
    of its weight (:meth:`CrystalFourierTransformer.copy_shares`); radial (B, N, N, C, K) the
    profile of each copy, whose filter differs from the others'; weight (heads, K, d); bias
    (heads, d).  Dropout drops each copy on its own, as :func:`attention_dropping_copies`.

    The filter is linear in the profile, so the sum over keys factors through the profile:
    sum_j w_ij v_j (r_ij W + b) = b sum_j w_ij v_j + sum_k W_k sum_j (w_ij r_ijk) v_j, which
    never forms a (B, heads, N, N, d) filter."""
    scores = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + mask, dim=-1)
    per_copy = scores.unsqueeze(-1) * shares  # (B, heads, N, N, C)
    if dropout > 0:
        kept = torch.empty_like(per_copy).bernoulli_(1.0 - dropout)
        per_copy = per_copy * kept / (1.0 - dropout)
    plain = per_copy.sum(-1) @ v  # (B, heads, N, d)
    profile = torch.einsum("bhijc,bijck->bhijk", per_copy, radial)  # each pair's weighted profile
    gathered = torch.einsum("bhijk,bhjd->bhikd", profile, v)
    return plain * bias[:, None, :] + torch.einsum("bhikd,hkd->bhid", gathered, weight)
