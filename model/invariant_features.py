"""The store as a differentiable PyTorch layer: invariant Fourier features of positions given
as tensors, for one setting or a batch that mixes settings, on any device, with gradients.

:class:`InvariantFeatures` holds, for every setting it serves at one radius, the plane waves
its basis uses and how they are routed into basis functions, as buffers.  Its forward pass
computes, for fractional positions ``x`` of shape ``(..., 3)``,

    f_i(x) = sum_k A[s, i, k] exp(2 pi i h_k . x)

(``Basis.encode``, the same numbers) with one product per column and one scatter-add, so
that autograd gives first and second derivatives with respect to ``x``; a batch that mixes
settings is one gather of each position's routing coefficients, not a loop over structures.

The plane waves are formed as :class:`basisdb.encoding.PlaneWaveRouter` forms them: one
table of exp(2 pi i m x) per axis and order, then products (a distinct in-plane pair once,
then one product per frequency), which is fewer transcendental functions than one per
frequency; complex tensors, which PyTorch multiplies in one kernel, where real cosine and
sine tables took twice as long (measured).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from basisdb import METRICS, BasisStore, frequency_set, get_setting

from .errors import CheckpointError

__all__ = ["InvariantFeatures", "Layout"]

Layout = Literal["packed", "slots"]
LAYOUTS = ("packed", "slots")
N_HALL = 530
CPU_BLOCK_BYTES = 1 << 21  # the (K, block) complex workspace of one block of points on a CPU


class InvariantFeatures(nn.Module):
    """Invariant features of fractional positions for settings of one store at one radius.

    Args:
        store: the basis store the routing comes from.
        radius: the truncation radius (one of ``store.radii``).
        halls: Hall numbers of the settings served; default: the default setting of each
            group in ``groups``.
        groups: ITA numbers or Hermann-Mauguin symbols, served in their default setting;
            default (with ``halls`` also None): all 230.
        real: real orthonormal features (the real basis) if True, else the complex ones.
        layout: ``"packed"``: function i of a setting in column i, the width the largest basis
            served (zeros beyond a setting's own ``n_basis``); ``"slots"``: each function in
            the slot of its orbit's first frequency in the radius's frequency set (the CFT's
            input layout, :meth:`basisdb.model.data.StructureFeaturizer.features`), width
            the largest frequency set.

    Forward: ``positions`` (..., 3) fractional coordinates in the conventional cell of each
    position's setting, float32 or float64, on any device; ``hall`` the Hall number of each
    position (an int, or an integer tensor broadcastable to ``positions.shape[:-1]``;
    optional when one setting is served).  Returns (..., width): real features in the dtype
    of ``positions``, or complex ones (complex64 or complex128).

    Buffers (moved by ``.to(device)``, saved in ``state_dict``): the frequencies and the
    routing tables, in float64.  A parent's ``.float()`` casts them too, and float64
    positions then get float32-exact coefficients (1e-7): keep the layer in float64 (its
    float32 work follows float32 positions anyway).  The state dict also records the store's
    fingerprint and a digest of the tables; loading it into a layer built from another basis
    is refused.
    """

    def __init__(
        self,
        store: BasisStore,
        radius: float,
        *,
        halls: Sequence[int] | None = None,
        groups: Sequence[int | str] | None = None,
        real: bool = True,
        layout: Layout = "packed",
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if halls is not None and groups is not None:
            raise ValueError("give halls or groups, not both")
        store.check_radius(float(radius))
        if halls is None:
            chosen = range(1, 231) if groups is None else groups
            halls = [get_setting(group=group).hall_number for group in chosen]
        halls = [int(hall) for hall in halls]
        if not halls:
            raise ValueError("InvariantFeatures needs at least one setting")
        if len(set(halls)) != len(halls):
            raise ValueError(f"a Hall number is given twice: {halls}")
        self.radius = float(radius)
        self.real = bool(real)
        self.layout: Layout = layout
        self.hall_numbers = tuple(halls)
        self.store_fingerprint = store.fingerprint
        tables = _routing_tables(store, self.radius, halls, real=self.real, layout=layout)
        self.width: int = tables.pop("width")
        self.n_basis_of = dict(zip(halls, tables["n_basis"].tolist()))
        for name, array in tables.items():
            self.register_buffer(name, torch.from_numpy(array))
        self.digest = _digest(self.radius, self.real, layout, tables)

    # -- identity -------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {
            "radius": self.radius,
            "real": self.real,
            "layout": self.layout,
            "hall_numbers": list(self.hall_numbers),
            "store_fingerprint": self.store_fingerprint,
            "digest": self.digest,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state["digest"] != self.digest:
            raise CheckpointError(
                f"these InvariantFeatures were saved from store {state['store_fingerprint'][:16]} (radius "
                f"{state['radius']}, {len(state['hall_numbers'])} settings, real={state['real']}, "
                f"layout={state['layout']!r}); this layer is built from store {self.store_fingerprint[:16]} (radius "
                f"{self.radius}, {len(self.hall_numbers)} settings, real={self.real}, layout={self.layout!r}) and "
                "its routing differs: build the layer from the store and settings it was saved with"
            )

    def extra_repr(self) -> str:
        return (
            f"radius={self.radius}, settings={len(self.hall_numbers)}, width={self.width}, real={self.real}, "
            f"layout={self.layout!r}, frequencies={self.frequencies.shape[0]}"
        )

    # -- forward --------------------------------------------------------------------------------
    def forward(self, positions: torch.Tensor, hall: int | torch.Tensor | None = None) -> torch.Tensor:
        if positions.shape[-1:] != (3,):
            raise ValueError(f"positions must have shape (..., 3), got {tuple(positions.shape)}")
        if not positions.is_floating_point():
            raise TypeError(f"positions must be float32 or float64, got {positions.dtype}")
        batch = positions.shape[:-1]
        x = positions.reshape(-1, 3)
        setting = self._setting_index(hall, batch, x.device)
        complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
        coefficients = torch.complex(self.values[:, 0], self.values[:, 1]).to(complex_dtype)  # (S, U)
        if setting is None:
            out = self._one_setting(x, 0, coefficients)
        elif x.is_cuda:
            out = self._gathered(x, setting, coefficients)
        else:
            out = self._by_setting(x, setting, coefficients)
        return out.reshape(*batch, self.width)

    def _by_setting(self, x: torch.Tensor, setting: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """(N, width): the points sorted by setting, each setting's run on its own columns (a
        loop over the settings present, not over structures), then put back in order."""
        order = torch.argsort(setting, stable=True)
        present, counts = torch.unique_consecutive(setting[order], return_counts=True)
        runs, start = [], 0
        for s, count in zip(present.tolist(), counts.tolist()):
            runs.append(self._one_setting(x[order[start : start + count]], s, coefficients))
            start += count
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        return torch.cat(runs).index_select(0, inverse)

    def _one_setting(self, x: torch.Tensor, s: int, coefficients: torch.Tensor) -> torch.Tensor:
        """(n, width) features of points of setting ``s``, from the columns it uses, in blocks
        whose work stays in cache on a CPU (several times faster than one pass over 10,000
        points; a GPU takes them at once), summed into the setting's own functions and padded."""
        columns = self.setting_columns[self.setting_offsets[s] : self.setting_offsets[s + 1]]
        pair, axial = self.column_pair[columns], self.column_axial[columns]
        coefficient, rows = coefficients[s, columns], self.rows[s, columns]
        own = self.width if self.layout == "slots" else int(self.n_basis[s])
        step = x.shape[0] if x.is_cuda else max(16, CPU_BLOCK_BYTES // (16 * max(1, len(columns))))
        blocks = []
        for start in range(0, x.shape[0], step):
            waves = self._plane_waves(x[start : start + step], pair, axial)  # (K_s, n) complex
            # Sums over the real and imaginary parts side by side (a real (.., 2) view): several
            # times faster than a complex index_add, or one of a strided real part (measured).
            terms = torch.view_as_real(waves * coefficient[:, None])
            sums = terms.new_zeros(own, *terms.shape[1:]).index_add(0, rows, terms)
            block = (sums[..., 0] if self.real else torch.view_as_complex(sums)).T  # (n, own)
            blocks.append(block if own == self.width else torch.nn.functional.pad(block, (0, self.width - own)))
        return torch.cat(blocks) if len(blocks) != 1 else blocks[0]

    def _gathered(self, x: torch.Tensor, setting: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """(N, width) in one pass over every column: each point's coefficients and output
        columns gathered by its setting (few large kernels, for a GPU)."""
        waves = self._plane_waves(x, self.column_pair, self.column_axial)  # (U, N)
        terms = torch.view_as_real(waves * coefficients[setting].T)
        rows = self.rows[setting].T[:, :, None].expand(terms.shape)
        sums = terms.new_zeros(self.width + 1, *terms.shape[1:]).scatter_add(0, rows, terms)[: self.width]
        return (sums[..., 0] if self.real else torch.view_as_complex(sums)).T

    def _setting_index(self, hall, batch: torch.Size, device: torch.device) -> torch.Tensor | None:
        """(N,) index of each position's setting in this layer, None when one is served."""
        if hall is None:
            if len(self.hall_numbers) > 1:
                raise ValueError(
                    f"this layer serves {len(self.hall_numbers)} settings: give the Hall number of each position"
                )
            return None
        if isinstance(hall, int) and len(self.hall_numbers) == 1:
            if hall != self.hall_numbers[0]:
                raise ValueError(f"this layer serves Hall {self.hall_numbers[0]} only, not {hall}")
            return None
        hall = torch.as_tensor(hall, device=device)
        if hall.is_floating_point() or hall.is_complex():
            raise TypeError(f"hall must hold integer Hall numbers, got {hall.dtype}")
        hall = torch.broadcast_to(hall, batch).reshape(-1).long()
        if hall.numel() and (hall.min() < 1 or hall.max() > N_HALL):
            raise ValueError(f"Hall numbers run from 1 to {N_HALL}; got {hall.min().item()}..{hall.max().item()}")
        index = self.setting_index[hall]
        if hall.numel() and index.min() < 0:
            missing = sorted(set(hall[index < 0].tolist()))
            raise ValueError(
                f"Hall number(s) {missing[:10]} are not served by this layer (it serves {len(self.hall_numbers)} "
                "settings); build it with halls= or groups= that include them"
            )
        return index

    def _plane_waves(self, x: torch.Tensor, pair: torch.Tensor, axial: torch.Tensor) -> torch.Tensor:
        """(K, n) complex exp(2 pi i h.x) of the columns whose in-plane pair and axial order
        are ``pair`` and ``axial`` (K,), at every point, from per-axis tables and products."""
        x = x - torch.floor(x).detach()  # into [0, 1): full precision of the phase for large |x|
        angle = (2 * math.pi) * self.orders.to(x.dtype)[None, :, None] * x.T[:, None, :]  # (3, 2*bound + 1, n)
        tables = torch.polar(torch.ones_like(angle), angle)
        pairs = tables[0].index_select(0, self.pair_first) * tables[1].index_select(0, self.pair_second)
        return pairs.index_select(0, pair) * tables[2].index_select(0, axial)


def _routing_tables(store: BasisStore, radius: float, halls: list[int], *, real: bool, layout: Layout) -> dict:
    """The buffers of a layer: its columns (frequencies (U, 3), each with its in-plane pair
    and axial table index) and per setting (S, 2, U) coefficients and (S, U) output columns
    (``width`` where the setting does not use a column: a dump column, dropped).

    A column is one use of a frequency.  Complex features use each present frequency once.
    A real function is Re(real_factor_i e_c) of a complex function c; the two real functions
    of a conjugate pair (O, -O) both come from O's frequencies, so those are used twice (two
    columns) and -O's not at all."""
    bases = [store.basis(hall=hall, radius=radius) for hall in halls]
    n_basis = np.array([basis.n_basis for basis in bases], dtype=np.int64)
    if layout == "slots":
        width = max(len(frequency_set(metric, radius)) for metric in METRICS)
    else:
        width = int(n_basis.max())
    bound = max(int(np.abs(basis.frequencies).max(initial=0)) for basis in bases)
    span = 2 * bound + 1

    def key(frequencies: np.ndarray) -> np.ndarray:  # exact integer identity of a frequency
        shifted = frequencies.astype(np.int64) + bound
        return (shifted[:, 0] * span + shifted[:, 1]) * span + shifted[:, 2]

    uses = []  # per setting: (use 0 or 1, frequency key, output column, coefficient)
    for basis in bases:  # settings, at construction only
        present = np.flatnonzero(basis.column_row >= 0)
        complex_row = basis.column_row[present].astype(np.int64)
        coefficient = basis.column_value[present]
        _, first = np.unique(complex_row, return_index=True)
        slot_of_row = present[first]  # function i's slot: its orbit's first frequency
        output = (lambda rows, slots=slot_of_row: slots[rows]) if layout == "slots" else (lambda rows: rows)
        keys = key(basis.frequencies[present])
        if not real:
            uses.append([(0, keys, output(complex_row), coefficient)])
            continue
        partner = basis.real_partner.astype(np.int64)[complex_row]
        own = partner >= complex_row  # real row c takes e_c (c first of its pair, or self-conjugate)
        second = partner > complex_row  # ... and real row partner(c) takes e_c too
        factor = basis.real_factor
        uses.append(
            [
                (0, keys[own], output(complex_row[own]), factor[complex_row[own]] * coefficient[own]),
                (1, keys[second], output(partner[second]), factor[partner[second]] * coefficient[second]),
            ]
        )
    primary = np.unique(np.concatenate([k for setting in uses for use, k, *_ in setting if use == 0]))
    secondary = np.unique(np.concatenate([k for setting in uses for use, k, *_ in setting if use == 1] or [[]]))
    secondary = secondary.astype(np.int64)
    columns = np.concatenate([primary, secondary])
    values = np.zeros((len(bases), 2, len(columns)))
    rows = np.full((len(bases), len(columns)), width, dtype=np.int64)
    for s, setting in enumerate(uses):
        for use, keys, target, coefficient in setting:
            where = np.searchsorted(primary, keys) if use == 0 else len(primary) + np.searchsorted(secondary, keys)
            values[s, 0, where], values[s, 1, where] = coefficient.real, coefficient.imag
            rows[s, where] = target
    setting_index = np.full(N_HALL + 1, -1, dtype=np.int64)
    setting_index[halls] = np.arange(len(halls))
    used_by = [np.flatnonzero(row != width) for row in rows]  # each setting's columns
    setting_offsets = np.concatenate([[0], np.cumsum([len(used) for used in used_by])]).astype(np.int64)
    shifted = np.stack([columns // (span * span), (columns // span) % span, columns % span], axis=1)
    pairs, column_pair = np.unique(shifted[:, 0] * span + shifted[:, 1], return_inverse=True)
    return {
        "frequencies": shifted - bound,
        "orders": np.arange(-bound, bound + 1, dtype=np.float64),
        "pair_first": pairs // span,
        "pair_second": pairs % span,
        "column_pair": column_pair.ravel().astype(np.int64),
        "column_axial": shifted[:, 2].copy(),
        "values": values,
        "rows": rows,
        "setting_index": setting_index,
        "setting_columns": np.concatenate(used_by).astype(np.int64),
        "setting_offsets": setting_offsets,
        "width": width,
        "n_basis": n_basis,
    }


def _digest(radius: float, real: bool, layout: str, tables: dict[str, np.ndarray]) -> str:
    """sha256 of what the layer computes: its radius, kind, layout and exact tables."""
    digest = hashlib.sha256(f"{radius!r} {real} {layout}".encode())
    for name in sorted(tables):
        array = np.ascontiguousarray(tables[name])
        digest.update(name.encode() + str(array.dtype).encode() + str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()
