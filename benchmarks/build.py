"""Full default build (230 groups, radii 2-16, verified and written) against a naive
baseline measured in the same run.

Baseline: a plain vectorized numpy version of the orbit algebra alone, radius by radius
(images by einsum, identification by np.unique on the image rows), with no verification
and nothing written.  Ours: ``build_store`` as the builder runs it.

    python benchmarks/build.py [--workers N] [--baseline-groups 230]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from basisdb import DEFAULT_RADII, build_store, command_parser, frequency_set, get_setting, run_command


def naive_orbit_algebra(group: int, radius: float) -> int:
    """Number of non-absent orbits, computed the plain way; returns it so it is not skipped."""
    setting = get_setting(group)
    h = frequency_set(setting.metric, radius)
    images = np.einsum("oji,kj->oki", setting.rotations.astype(np.int64), h)  # R^T h
    _, inverse = np.unique(images.reshape(-1, 3), axis=0, return_inverse=True)
    inverse = inverse.reshape(setting.n_operations, -1)
    _, own = np.unique(h, axis=0, return_inverse=True)
    phases = (setting.translations @ h.T) % 24
    absent = ((inverse == own.ravel()) & (phases != 0)).any(axis=0)
    representative = inverse.min(axis=0)
    return int(np.unique(representative[~absent]).size)


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_parser("benchmarks/build.py", __doc__)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="builder processes")
    parser.add_argument("--baseline-groups", type=int, default=230, help="groups 1..N in the baseline")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = build_store(Path(tmp) / "store.h5", radii=DEFAULT_RADII, workers=args.workers, progress=False)
        ours = time.perf_counter() - start
        print(report.format_summary())

    start = time.perf_counter()
    for group in range(1, args.baseline_groups + 1):
        for radius in DEFAULT_RADII:
            naive_orbit_algebra(group, radius)
    naive = (time.perf_counter() - start) * 230 / args.baseline_groups
    scaled = "" if args.baseline_groups == 230 else f" (scaled from {args.baseline_groups} groups)"
    print()
    print(f"ours: full default build, verified and written, {args.workers} workers: {ours:.2f} s (goal <= 12 s)")
    print(f"naive: orbit algebra alone, one process, nothing written: {naive:.2f} s{scaled}")
    print(f"ratio naive / ours: {naive / ours:.1f}x")


if __name__ == "__main__":
    sys.exit(run_command(main))
