"""What a run found, for people: its table (:func:`markdown`) and its figures (:func:`plots`),
both from an :class:`~basisdb.model.results.EvaluationResult` alone, so that any stored run is
redrawn by the current code.

Every spread is a sample standard deviation (ddof=1).  A method's scores are summarized fold
by fold: each fold's score averaged over the training seeds, then the mean ± sd over the
folds; with several training seeds, the sd over the seeds of each seed's mean MAE is given
beside it.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .results import EvaluationResult

__all__ = ["Spread", "Summary", "summarize", "markdown", "plots"]


@dataclass(frozen=True)
class Spread:
    """The mean of some values and their sample standard deviation (None for one value)."""

    mean: float
    sd: float | None

    @classmethod
    def of(cls, values) -> Spread:
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else None)

    def cell(self, digits: int) -> str:
        return f"{self.mean:.{digits}f}" + (f" ± {self.sd:.{digits}f}" if self.sd is not None else "")


@dataclass(frozen=True)
class Summary:
    """One method of a run.

    Attributes:
        test_mae, test_rmse, test_r2: over the folds (each fold's averaged over the seeds).
        unseen_mae: likewise on the held-out groups, or None without them.
        seeds_mae: over the training seeds, each seed's mean test MAE over the folds; None
            with one seed.
        seconds: fits and predictions of every fold, the mean over the seeds.
    """

    test_mae: Spread
    test_rmse: Spread
    test_r2: Spread
    unseen_mae: Spread | None
    seeds_mae: Spread | None
    seconds: float


def summarize(result: EvaluationResult) -> dict[str, Summary]:
    """Every method's :class:`Summary`, in the run's order."""
    summaries = {}
    for name in result.methods:
        runs = result.of(name)

        def per_fold(part: str, metric: str, runs=runs) -> np.ndarray:
            """(seeds, folds) scores."""
            return np.array([[getattr(getattr(fold, part), metric) for fold in run.folds] for run in runs])

        test_mae = per_fold("test", "mae")
        summaries[name] = Summary(
            test_mae=Spread.of(test_mae.mean(axis=0)),
            test_rmse=Spread.of(per_fold("test", "rmse").mean(axis=0)),
            test_r2=Spread.of(per_fold("test", "r2").mean(axis=0)),
            unseen_mae=Spread.of(per_fold("unseen", "mae").mean(axis=0)) if result.held_out.any() else None,
            seeds_mae=Spread.of(test_mae.mean(axis=1)) if len(runs) > 1 else None,
            seconds=float(np.mean([sum(fold.seconds for fold in run.folds) for run in runs])),
        )
    return summaries


def markdown(result: EvaluationResult, folder: str | Path | None = None) -> str:
    """The run's table: a row per method; ``folder``: where the run is written, for the
    command that reruns it."""
    config = result.config
    summaries = summarize(result)
    unseen = bool(result.held_out.any())
    several = len(result.seeds) > 1
    n_seen = int((~result.held_out).sum())
    seeds = ", ".join(str(seed.training_seed) for seed in result.seeds)
    spread = "mean ± sample sd over the folds" + (
        f", each fold's score the mean over the training seeds {seeds}" if several else ""
    )
    lines = [
        f"# {config.dataset} / {config.target} ({result.unit}): {config.folds}-fold CV, seed {config.seed}, "
        f"training seed{'s' if several else ''} {seeds}",
        "",
        f"{len(result.ids)} structures ({n_seen} in folds, {len(result.ids) - n_seen} in held-out groups "
        f"{config.holdout or '-'}); {len(result.rejected)} rejected. Configuration: {config.label()}; "
        f"{config.protocol}."
        + (f" Rerun: `basisdb evaluate --config {Path(folder) / 'config.toml'}`" if folder is not None else ""),
        "",
        f"Cells: {spread}" + ("; sd over seeds: of each seed's mean MAE." if several else "."),
        "",
        "| method | MAE | RMSE | R^2 |"
        + (" MAE sd over seeds |" if several else "")
        + (" unseen-group MAE | unseen / seen |" if unseen else "")
        + " wall (s) |",
        "|---|---|---|---|" + ("---|" if several else "") + ("---|---|" if unseen else "") + "---|",
    ]
    for name, s in summaries.items():
        row = f"| {name} | {s.test_mae.cell(4)} | {s.test_rmse.cell(4)} | {s.test_r2.cell(3)} |"
        if several:
            row += f" {s.seeds_mae.sd:.4f} |"
        if unseen:
            row += f" {s.unseen_mae.cell(4)} | {s.unseen_mae.mean / s.test_mae.mean:.2f} |"
        lines.append(row + f" {s.seconds:.0f} |")
    return "\n".join(lines) + "\n"


def plots(result: EvaluationResult, folder: str | Path) -> list[Path]:
    """The figures of one run, written to ``folder``: the parity plot of every method's
    out-of-fold predictions (the mean over the training seeds) and, with held-out groups,
    seen- against unseen-group MAE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    config, unit = result.config, result.unit
    methods = list(result.methods)
    summaries = summarize(result)
    seen = ~result.held_out
    truth = result.truth[seen]
    predicted = {name: np.mean([run.out_of_fold for run in result.of(name)], axis=0)[seen] for name in methods}
    everything = np.concatenate([truth, *predicted.values()])
    low, high = float(everything.min()), float(everything.max())
    pad = 0.03 * (high - low)
    scope = f", groups {config.holdout} held out" if result.held_out.any() else ""
    seeds = f", mean of {len(result.seeds)} training seeds" if len(result.seeds) > 1 else ""
    written = []
    width = 3.0 * len(methods)  # inches
    title = textwrap.wrap(  # to the figure's width, at about 12 characters an inch at 10 pt
        f"{config.dataset} / {config.target}: {config.folds}-fold cross-validation, {config.protocol}{scope}{seeds}",
        int(12 * width),
        break_on_hyphens=False,
    )
    fig, axes = plt.subplots(
        1, len(methods), figsize=(width, 3.6 + 0.17 * (len(title) - 1)), squeeze=False, layout="constrained"
    )
    for ax, name in zip(axes[0], methods):
        ax.scatter(truth, predicted[name], s=4, alpha=0.4, linewidths=0)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="k", lw=0.8)
        ax.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal")
        summary = summaries[name]
        ax.set_title(f"{name}\nMAE {summary.test_mae.mean:.3f}, R² {summary.test_r2.mean:.2f}", fontsize=9)
        ax.set_xlabel(f"DFT value ({unit})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"predicted, out of fold ({unit})", fontsize=8)
    fig.suptitle("\n".join(title), fontsize=10)
    path = folder / f"parity_{config.target}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    if result.held_out.any():
        fig, ax = plt.subplots(figsize=(1.3 * len(methods) + 2.5, 3.8), layout="constrained")
        x = np.arange(len(methods))
        for offset, part, label in (
            (-0.2, "test_mae", "seen groups (CV test folds)"),
            (0.2, "unseen_mae", f"unseen groups {config.holdout}"),
        ):
            spreads = [getattr(summaries[m], part) for m in methods]
            ax.bar(x + offset, [s.mean for s in spreads], 0.4, yerr=[s.sd for s in spreads], capsize=3, label=label)
        ax.set_xticks(x, methods, fontsize=8, rotation=20, ha="right")
        ax.set_ylabel(f"MAE ({unit})")
        title = f"{config.dataset} / {config.target}: seen vs unseen space groups ({config.protocol})"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, title=f"bars: mean ± sample sd over the {config.folds} folds", title_fontsize=8)
        path = folder / f"seen_vs_unseen_{config.target}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
