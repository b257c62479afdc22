"""What the frames of "same crystal, same answer" cost.

1. The distribution of frames per structure over the built-in Materials Project datasets
   (about 6,200 crystals), for both invariances, and how the polar origin was fixed.
2. Prediction time of the CFT (benchmark recipe: d_model 128, hidden 128, 3 blocks, 2
   layers, radius 4, untrained: the cost does not depend on the weights) for a 200-atom
   single-species P1 cell, against the naive baseline measured in the same run: anchoring
   the polar origin on every atom of the rarest species (200 anchors, as before the phased
   origin existed).

    basisdb data fetch   # once
    python benchmarks/frames.py [--limit N] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import torch

from basisdb import BasisStore, Cell, StructureError, crystal_frames, random_crystal
from basisdb.model.checkpoint import Predictor
from basisdb.model.data import StructureFeaturizer
from basisdb.model.datasets import DATASETS, load_dataset
from basisdb.model.models import CFTConfig, CrystalFourierTransformer

NAIVE_ANCHORS = 10**9  # anchor on every atom of the rarest species, however many


def distribution(cells: list[Cell], invariance: str) -> dict:
    counts, origins, strengths, rejected = [], collections.Counter(), [], 0
    for cell in cells:
        try:
            frames = crystal_frames(cell, invariance=invariance)
        except StructureError:
            rejected += 1
            continue
        counts.append(frames.n_frames)
        origins[frames.origin] += 1
        if frames.origin == "phased":
            strengths.append(frames.origin_strength)
    counts = np.array(counts)
    return {"counts": counts, "origins": origins, "strengths": strengths, "rejected": rejected}


def timed_prediction(predictor: Predictor, cell: Cell, repeats: int) -> tuple[float, int]:
    """Best wall time of encode + predict for one structure, and its number of frames."""
    best = np.inf
    for _ in range(repeats):
        began = time.perf_counter()
        item = predictor.featurizer.encode(cell)
        predictor.predict_encoded([item], batch_size=32)
        best = min(best, time.perf_counter() - began)
    return best, item.n_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="structures per dataset (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cells = []
    for name, spec in DATASETS.items():
        data = load_dataset(name, next(iter(spec.targets)))
        if args.limit:
            data = data.sample(args.limit, 0)
        cells += [Cell.from_pymatgen(s, label=i) for i, s in zip(data.ids, data.structures)]
    print(f"frames per structure over {len(cells)} built-in structures")
    print("invariance | mean | median | p90 | p99 | max | origin: none / anchored / phased | weakest phase")
    for invariance in ("e3", "proper"):
        found = distribution(cells, invariance)
        c, o = found["counts"], found["origins"]
        weakest = f"{min(found['strengths']):.2f}" if found["strengths"] else "-"
        print(
            f"{invariance} | {c.mean():.2f} | {np.median(c):g} | "
            f"{np.percentile(c, 90):g} | {np.percentile(c, 99):g} | {c.max()} | "
            f"{o['none']} / {o['anchored']} / {o['phased']} | {weakest}"
        )
        histogram = collections.Counter(c.tolist())
        print("  histogram: " + ", ".join(f"{k}: {histogram[k]}" for k in sorted(histogram)))

    torch.manual_seed(0)
    store = BasisStore.open()
    featurizer = StructureFeaturizer(store, 4.0)
    naive_featurizer = StructureFeaturizer(store, 4.0, max_anchors=NAIVE_ANCHORS)
    model = CrystalFourierTransformer(
        # the recipe's sizes, without the environment term, as measured in BENCHMARKS.md
        CFTConfig(n_slots=featurizer.n_slots, environment=False)
    )
    rng = np.random.default_rng(0)
    cell = random_crystal(200, rng)
    ours, ours_frames = timed_prediction(Predictor(model, featurizer, 0.0, 1.0, device="cpu"), cell, args.repeats)
    naive, naive_frames = timed_prediction(
        Predictor(model, naive_featurizer, 0.0, 1.0, device="cpu"), cell, max(1, args.repeats // 2)
    )
    print(
        f"\n200-atom single-species P1 cell, {args.threads} threads, best of {args.repeats}: "
        "standardize, frames, features, pair profiles, model"
    )
    print(f"  phased origin: {ours_frames} frames, {ours:.3f} s")
    print(f"  naive (anchored on all 200 atoms): {naive_frames} frames, {naive:.3f} s")
    print(f"  ratio: {naive / ours:.0f}x faster")


if __name__ == "__main__":
    main()
