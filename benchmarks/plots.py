"""Every figure of the benchmarks, drawn from the shipped result files (no image is kept in git).

    python benchmarks/plots.py                         # into runs/plots
    python benchmarks/plots.py --out FOLDER --results runs/rerun

Draws the learning curve (MAE against training structures, log-log, mean ± sd over seeds) and
one parity plot (out-of-fold prediction against truth) per target for each method of the
headline table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tables

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # pragma: no cover - the model extra installs it
    raise SystemExit("benchmarks/plots.py needs matplotlib: pip install matplotlib") from None


def learning_curve(out: Path) -> Path:
    spec = tables.manifest()["learning-curve"]
    figure, axes = plt.subplots(figsize=(5.5, 4))
    seeds = set()
    for label, run_name, method in spec["methods"]:
        sizes, means, sds = [], [], []
        for size in spec["sizes"]:
            entry = tables.Entry(f"{spec['prefix']}/{run_name.format(size=size)}", method)
            mean, sd = entry.mae()
            seeds.add(entry.seeds)
            sizes.append(entry.result.seeds[0].methods[method].folds[0].n_train)
            means.append(mean)
            sds.append(sd or 0.0)
        axes.errorbar(sizes, means, yerr=sds, marker="o", capsize=3, label=label)
    axes.set(xscale="log", yscale="log", xlabel="training structures per fold", ylabel="test MAE, log10(GPa)")
    axes.set_title(f"log10 K_VRH: learning curve (5 folds, {min(seeds)} training seeds)")
    axes.legend(fontsize=8)
    path = out / "learning-curve.png"
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def parity(out: Path) -> list[Path]:
    paths = []
    for target, name in tables.TARGETS.items():
        entries = {label: tables.Entry(f"{target}/{run}", method) for label, (run, method) in tables.BASELINES.items()}
        entries.pop("training mean")
        entries["CFT, chosen on validation"] = tables.chosen(target)
        figure, axes = plt.subplots(1, len(entries), figsize=(4 * len(entries), 4), sharex=True, sharey=True)
        for ax, (label, entry) in zip(axes, entries.items()):
            result = entry.result
            predicted = np.mean([m.out_of_fold for m in result.of(entry.method)], axis=0)
            seen = ~np.isnan(predicted)
            ax.scatter(result.truth[seen], predicted[seen], s=4, alpha=0.5)
            low, high = result.truth[seen].min(), result.truth[seen].max()
            ax.plot([low, high], [low, high], color="black", linewidth=0.8)
            ax.set(title=f"{label}\nMAE {entry.mae()[0]:.4f}", xlabel=f"truth ({result.unit})")
        axes[0].set_ylabel("out-of-fold prediction, mean over seeds")
        figure.suptitle(name)
        path = out / f"parity-{target}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path("runs/plots"), help="folder of the figures (default: %(default)s)"
    )
    parser.add_argument(
        "--results", type=Path, default=tables.RESULTS, help="folder of the runs (default: the shipped ones)"
    )
    args = parser.parse_args(argv)
    tables.RESULTS = args.results
    args.out.mkdir(parents=True, exist_ok=True)
    for path in [learning_curve(args.out), *parity(args.out)]:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
