"""Same crystal, same answer: how much a CFT prediction changes when the same physical
crystal is described differently, on random built-in Materials Project structures.

For each re-description: how many structures change their prediction by more than 1e-5
relative, and the worst relative change of the prediction and of any atom's encoding.  A
prediction's change is relative to the larger of its magnitude and the spread (standard
deviation) of the predictions over the sample, so that a value near zero does not turn
float32 rounding into a large ratio.  The
model is the benchmark recipe (d_model 128, hidden 128, 3 blocks, 2 layers, radius 4, the
environment term unless ``--no-environment``), untrained unless ``--checkpoint`` is given:
invariance is a property of the pipeline, and a random network is as sensitive to a broken
frame as a trained one.  The naive baseline is
the same model on a single standardization (spglib's choice, no frames), measured in the
same run.  Noise is reported apart: it changes the crystal, so its figure is a sensitivity,
not a failure.

    basisdb data fetch   # once
    python benchmarks/same_crystal.py [--structures 150] [--dataset flla_2015] [--checkpoint CKPT] [--no-environment]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from basisdb import REDESCRIPTIONS, BasisStore, Cell, StructureError, mirrored, noisy
from basisdb.model.checkpoint import Predictor, load_checkpoint
from basisdb.model.cli import add_environment_argument
from basisdb.model.data import StructureFeaturizer
from basisdb.model.datasets import DATASETS, load_dataset
from basisdb.model.models import CFTConfig, CrystalFourierTransformer

THRESHOLD = 1e-5


class SingleFrame(StructureFeaturizer):
    """The naive baseline: one standardization, no frames (the first frame is spglib's own)."""

    def encode(self, structure, label=""):
        item = super().encode(structure, label)
        return replace(item, row_index=item.row_index[:1], weights=np.ones(1))


def relative(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(a)).max(), 1e-12))


def scan(predictor: Predictor, cells: list[Cell], kinds: dict, seed: int) -> dict[str, tuple[int, int, float, float]]:
    """Per re-description: (structures compared, changed, worst prediction change, worst
    atom-encoding change)."""
    rng = np.random.default_rng(seed)
    spread = float(np.std(predictor.predict(cells)))
    results = {}
    for name, redescribe in kinds.items():
        compared = changed = 0
        worst_value = worst_atoms = 0.0
        for cell in cells:
            other, source = redescribe(cell, rng)
            try:
                values = predictor.predict([cell, other])
                atoms = predictor.atom_encodings(cell)[source], predictor.atom_encodings(other)
            except StructureError:
                continue
            compared += 1
            change = abs(values[0] - values[1]) / max(abs(values[0]), spread)
            changed += change > THRESHOLD
            worst_value = max(worst_value, change)
            worst_atoms = max(worst_atoms, relative(*atoms))
        results[name] = (compared, changed, worst_value, worst_atoms)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=int, default=150)
    parser.add_argument("--dataset", default="flla_2015", choices=sorted(DATASETS))
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    add_environment_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # looser-group warnings of individual structures

    data = load_dataset(args.dataset, next(iter(DATASETS[args.dataset].targets))).sample(args.structures, args.seed)
    cells = [Cell.from_pymatgen(s, label=i) for i, s in zip(data.ids, data.structures)]
    if args.checkpoint:
        predictor = load_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(args.seed)
        featurizer = StructureFeaturizer(BasisStore.open(), 4.0)
        model = CrystalFourierTransformer(
            CFTConfig(n_slots=featurizer.n_slots, environment=args.environment)  # the recipe's sizes
        )
        predictor = Predictor(model, featurizer, 0.0, 1.0, device="cpu")
    naive = Predictor(
        predictor.model,
        SingleFrame(predictor.featurizer.store, predictor.featurizer.radius, predictor.featurizer.symprec),
        predictor.target_mean,
        predictor.target_std,
        device="cpu",
    )
    kinds = {**REDESCRIPTIONS, "mirror image": lambda cell, _: mirrored(cell)}
    began = time.perf_counter()
    ours = scan(predictor, cells, kinds, args.seed)
    baseline = scan(naive, cells, kinds, args.seed)
    noise = scan(predictor, cells, {"every atom moved 5e-4 A": lambda cell, rng: noisy(cell, rng, 5e-4)}, args.seed)
    print(
        f"{len(cells)} random {args.dataset} structures, invariance {predictor.featurizer.invariance}, "
        f"symprec {predictor.featurizer.symprec} A ({time.perf_counter() - began:.0f} s)"
    )
    print(
        f"re-description | changed > {THRESHOLD:g} (frames) | worst prediction change | worst atom change | "
        "changed (single standardization, naive)"
    )
    for name in kinds:
        compared, changed, value, atoms = ours[name]
        _, naive_changed, naive_value, _ = baseline[name]
        print(
            f"{name} | {changed} of {compared} | {value:.1e} | {atoms:.1e} | "
            f"{naive_changed} of {compared} (worst {naive_value:.1e})"
        )
    compared, changed, value, atoms = noise["every atom moved 5e-4 A"]
    print(
        f"noise: every atom moved 5e-4 A | {changed} of {compared} | {value:.1e} | {atoms:.1e} | "
        "(a different crystal: a sensitivity)"
    )


if __name__ == "__main__":
    main()
