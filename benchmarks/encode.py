"""Basis.encode against naive evaluation, measured in the same run.

Naive: one complex exponential per (point, frequency), then a dense product with the
routing matrix.  Ours: per-axis powers, three-table products, sparse routing.

    python benchmarks/encode.py [--points 4000] [--radius 6] [--repeats 5]
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence

import numpy as np

from basisdb import build_basis, command_parser, run_command

GROUPS = {1: "P1", 62: "Pnma", 194: "P6_3/mmc", 225: "Fm-3m"}


def best_time(function, repeats: int) -> float:
    function()  # warm caches and lazy set-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def naive_encode(dense_routing: np.ndarray, frequencies: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.exp(2j * np.pi * (x @ frequencies.T)) @ dense_routing.T


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_parser("benchmarks/encode.py", __doc__)
    parser.add_argument("--points", type=int, default=4000, help="random points encoded")
    parser.add_argument("--radius", type=float, default=6, help="truncation radius")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best counts")
    args = parser.parse_args(argv)
    x = np.random.default_rng(0).random((args.points, 3))

    print(f"encode of {args.points} points at radius {args.radius:g} (best of {args.repeats})")
    header = (
        f"{'group':>14} {'K':>5} {'n_basis':>7} {'naive ms':>9} {'ours ms':>8} "
        f"{'ratio':>6} {'single ms':>9} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    ratios, single_ratios = [], []
    for group, name in GROUPS.items():
        basis = build_basis(group=group, radius=args.radius)
        dense = basis.routing.toarray()
        expected = naive_encode(dense, basis.frequencies, x)
        assert np.abs(basis.encode(x) - expected).max() < 1e-10  # same answer, or no comparison
        naive = best_time(lambda dense=dense, basis=basis: naive_encode(dense, basis.frequencies, x), args.repeats)
        ours = best_time(lambda basis=basis: basis.encode(x), args.repeats)
        single = best_time(lambda basis=basis: basis.encode(x, precision="single"), args.repeats)
        ratios.append(naive / ours)
        single_ratios.append(naive / single)
        print(
            f"{name + f' ({group})':>14} {basis.n_frequencies:>5} {basis.n_basis:>7} {naive * 1e3:>9.1f} "
            f"{ours * 1e3:>8.1f} {naive / ours:>6.1f} {single * 1e3:>9.1f} {naive / single:>6.1f}"
        )
    geo = math.exp(np.mean(np.log(ratios)))
    geo_single = math.exp(np.mean(np.log(single_ratios)))
    print(f"geometric mean speed-up: {geo:.1f}x (complex128), {geo_single:.1f}x (complex64); goal >= 5x")


if __name__ == "__main__":
    sys.exit(run_command(main))
