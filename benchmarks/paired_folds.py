"""Paired per-fold comparison of methods evaluated on the same folds, from results.json files.

Methods of one (dataset, target, seed, folds, structures) may come from several runs of
``python -m model.evaluate`` (for example the neural models from one run and new baselines
from another): the folds are the same because they are drawn from the seed. A method found in
several directories is taken from the last one given. For each target it
prints every method's fold MAEs, their mean and sample standard deviation, and the CFT's
paired differences to every other method (negative: the CFT is better) with the folds it wins.

    python benchmarks/paired_folds.py benchmarks/results/frames benchmarks/results/magpie-structure-rf ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    roots = [Path(p) for p in sys.argv[1:]] or [Path("benchmarks/results")]
    runs: dict[tuple, dict[str, np.ndarray]] = {}
    for root in roots:
        for path in sorted(root.glob("*/results.json")):
            run = json.loads(path.read_text())
            if run["n_unseen"]:
                continue  # held-out groups: another comparison
            key = (run["dataset"], run["target"], run["seed"], run["folds"], run["n_structures"])
            for method, result in run["results"].items():
                runs.setdefault(key, {})[method] = np.array([fold["test"]["mae"] for fold in result["folds"]])
    for (dataset, target, seed, folds, n), maes in sorted(runs.items()):
        print(f"\n{dataset} {target}: {n} structures, {folds} folds, seed {seed}")
        for method, values in maes.items():
            print(f"  {method:22s} {values.mean():.4f} ± {values.std(ddof=1):.4f}   folds {np.round(values, 4).tolist()}")
        if "cft" not in maes:
            continue
        for method, values in maes.items():
            if method == "cft":
                continue
            difference = maes["cft"] - values
            print(f"  cft - {method:20s} {difference.mean():+.4f} ± {difference.std(ddof=1):.4f}   cft better on {int((difference < 0).sum())} of {folds} folds")


if __name__ == "__main__":
    main()
