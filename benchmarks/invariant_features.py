"""The torch layer (InvariantFeatures) against Basis.encode and a naive torch layer, measured
in the same run: forward, and forward + backward (the gradient with respect to positions).

Naive torch: one complex exponential per (point, frequency) and a dense product with the
routing matrix, differentiable by autograd like the layer.  Basis.encode is numpy and has no
backward.  Threads: the same number for torch and numpy's work (--threads, default 1).

    python benchmarks/invariant_features.py [--points 10000] [--radius 6] [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from basisdb import BasisStore, command_parser, run_command
from basisdb.model.invariant_features import InvariantFeatures

GROUPS = {1: "P1", 62: "Pnma", 194: "P6_3/mmc", 225: "Fm-3m"}


def best_time(function, repeats: int, device: str) -> float:
    function()  # warm caches and lazy set-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


class NaiveLayer(torch.nn.Module):
    """exp(2 pi i x H^T) @ M^T with a dense routing M: the textbook differentiable layer."""

    def __init__(self, frequencies: np.ndarray, routing: np.ndarray, real_routing: np.ndarray):
        super().__init__()
        self.register_buffer("frequencies", torch.from_numpy(frequencies.astype(np.float64)))
        self.register_buffer("routing_t", torch.from_numpy(routing.T.copy()))
        self.register_buffer("real_routing_t", torch.from_numpy(real_routing.T.copy()))

    def forward(self, x: torch.Tensor, real: bool) -> torch.Tensor:
        waves = torch.exp((2j * math.pi) * (x @ self.frequencies.T))
        return (waves @ self.real_routing_t).real if real else waves @ self.routing_t


def measure(basis, naive: NaiveLayer, layer: InvariantFeatures, x_numpy, x, real: bool, repeats: int, device: str):
    """Seconds: Basis.encode, naive and layer forward, naive and layer forward + backward."""

    def forward_backward(module) -> None:
        positions = x.clone().requires_grad_(True)
        out = module(positions) if module is layer else module(positions, real)
        (out.abs() if out.is_complex() else out).sum().backward()

    encode = best_time(lambda: basis.encode(x_numpy, real=real), repeats, "cpu")
    with torch.no_grad():
        naive_forward = best_time(lambda: naive(x, real), repeats, device)
        layer_forward = best_time(lambda: layer(x), repeats, device)
    naive_both = best_time(lambda: forward_backward(naive), repeats, device)
    layer_both = best_time(lambda: forward_backward(layer), repeats, device)
    return encode, naive_forward, layer_forward, naive_both, layer_both


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_parser("benchmarks/invariant_features.py", __doc__)
    parser.add_argument("--points", type=int, default=10_000, help="random positions encoded")
    parser.add_argument("--radius", type=float, default=6, help="truncation radius (in the default store)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (numpy's encode runs on one)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (Basis.encode always runs on the CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = args.device
    x_numpy = np.random.default_rng(0).random((args.points, 3))
    x = torch.from_numpy(x_numpy).to(device)
    print(
        f"{args.points} positions at radius {args.radius:g}, float64, {device}, torch threads {args.threads}, "
        f"best of {args.repeats}; ms"
    )
    header = (
        f"{'group':>9} {'kind':>7} {'n_basis':>7} {'encode':>7} {'naive fwd':>9} {'layer fwd':>9} {'encode/layer':>12} "
        f"{'naive f+b':>9} {'layer f+b':>9} {'naive/layer':>11}"
    )
    print(header)
    print("-" * len(header))
    with BasisStore.open() as store:
        for group, name in GROUPS.items():
            basis = store.basis(group=group, radius=args.radius)
            naive = NaiveLayer(basis.frequencies, basis.routing.toarray(), basis.real_routing.toarray()).to(device)
            for real in (True, False):
                layer = InvariantFeatures(store, args.radius, groups=[group], real=real).to(device)
                expected = basis.encode(x_numpy, real=real)
                assert np.abs(layer(x).cpu().numpy() - expected).max() < 1e-10  # the same numbers, or no race
                assert np.abs(naive(x, real).cpu().numpy() - expected).max() < 1e-9

                encode, naive_forward, layer_forward, naive_both, layer_both = measure(
                    basis, naive, layer, x_numpy, x, real, args.repeats, device
                )
                print(
                    f"{name:>9} {'real' if real else 'complex':>7} {basis.n_basis:>7} {1e3 * encode:7.1f} "
                    f"{1e3 * naive_forward:9.1f} {1e3 * layer_forward:9.1f} {encode / layer_forward:12.2f} "
                    f"{1e3 * naive_both:9.1f} {1e3 * layer_both:9.1f} {naive_both / layer_both:11.2f}"
                )
        # One batch mixing the four settings (a quarter of the points each), against one
        # Basis.encode per setting.
        halls = np.array([store.basis(group=group, radius=args.radius).hall_number for group in GROUPS])
        owner = np.repeat(halls, -(-args.points // len(halls)))[: args.points]
        bases = {int(hall): store.basis(hall=int(hall), radius=args.radius) for hall in halls}
        mixed = InvariantFeatures(store, args.radius, halls=halls.tolist()).to(device)
        hall_tensor = torch.from_numpy(owner).to(device)

        def encode_each() -> None:
            for hall, basis in bases.items():
                basis.encode(x_numpy[owner == hall], real=True)

        def mixed_backward() -> None:
            positions = x.clone().requires_grad_(True)
            mixed(positions, hall_tensor).sum().backward()

        encode = best_time(encode_each, args.repeats, "cpu")
        with torch.no_grad():
            layer_forward = best_time(lambda: mixed(x, hall_tensor), args.repeats, device)
        layer_both = best_time(mixed_backward, args.repeats, device)
        print(
            f"{'mixed 4':>9} {'real':>7} {'-':>7} {1e3 * encode:7.1f} {'-':>9} {1e3 * layer_forward:9.1f} "
            f"{encode / layer_forward:12.2f} {'-':>9} {1e3 * layer_both:9.1f} {'-':>11}"
        )


if __name__ == "__main__":
    run_command(main)
