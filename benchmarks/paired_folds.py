"""Paired per-fold comparison of methods evaluated on the same folds, from results.json files.

Methods of one (dataset, target, fold seed, folds, structures) may come from several runs of
``basisdb evaluate`` (the neural models from one run, new baselines from another,
ablations from others): the folds are the same because they are drawn from the seed. Neural
methods are taken from runs of one protocol (``--protocol``: converged or compute-matched); the
forests and the mean do not train by epochs and are taken from any run. A CFT run with a
switch away from today's defaults is its own method (``cft [no radial bias]``; runs made
before the environment term became the default, 2026-12-02, are ``cft [no environment]``, and
those made with the 256-wide positional encoder of the recipe before 2026-12-04 are
``cft [hidden 256]``).
Runs of one method with several ``--training-seed`` values are averaged per fold, and the
spread of their means is shown; a paired difference uses the training seeds both methods have
(all, if they share none).

For each target it prints every method's fold MAEs, their mean and sample standard deviation
over folds, the neural fits' wall time and epochs, and the CFT's paired differences to every
other method (negative: the CFT is better) with the folds it wins; ``--reference`` pairs
another method instead (such as ``"cft [no environment]"``). A neural method found twice for
the same training seed is taken from the last file read, and a note on stderr names both
files: name the roots to choose (older budgeted runs predate the speed fixes).

``--score validation`` compares the best validation MAEs of the neural fits instead (runs that
record them, from 2026-12-02): what a variant is chosen on, without looking at the test folds.
``--ensemble`` scores each method's training seeds as one model: the MAE, on each fold's test
set, of the seeds' mean out-of-fold prediction (a forest, trained once, is paired with the
whole ensemble).  ``--held-out`` compares the runs with held-out groups (``basisdb evaluate
--holdout-groups``), which are skipped otherwise: ``--score test`` is then the seen-group MAE,
``--score unseen`` the MAE of each fold's model on the held-out groups.  ``--by-system`` adds,
per target, each method's MAE over the structures of each crystal system (its out-of-fold
predictions, averaged over training seeds as the fold MAEs are), to show where two methods
differ.

    python benchmarks/paired_folds.py --protocol converged benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from basisdb import crystal_system
from basisdb.model.checkpoint import ENCODER_ARCHITECTURE
from basisdb.model.cli import CRYSTAL_SYSTEMS
from basisdb.model.models import CFTConfig
from basisdb.model.training import TrainConfig

NEURAL = ("cgcnn", "cft", "cft-pretrained")
# what a fold is scored by (--score)
SCORES = {
    "test": lambda fold: fold["test"]["mae"],
    "validation": lambda fold: fold["best_val_mae"],
    "unseen": lambda fold: fold["unseen"]["mae"],
}


@dataclass(frozen=True)
class Run:
    """One method's results in one results.json: its folds and the file's predictions (None in
    the two first evaluations, written before results.json kept them)."""

    path: Path
    folds: list[dict]
    predictions: dict | None
    method: str

    @property
    def out_of_fold(self) -> np.ndarray:
        """(n,) float64 the method's prediction of every structure, made by the fold that tested it."""
        return np.asarray(self.predictions["out_of_fold"][self.method], dtype=np.float64)


def fold_test_sets(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """The test rows of each fold, drawn as ``basisdb evaluate`` draws them (no held-out groups)."""
    from sklearn.model_selection import KFold

    return [test for _, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.arange(n))]


def fold_scores(chosen: Sequence[Run], score, test_sets: list[np.ndarray] | None) -> np.ndarray:
    """(folds,) one method's score on each fold over the runs of some training seeds: their mean
    score, or, given the folds' ``test_sets``, the MAE of their mean prediction (an ensemble)."""
    if test_sets is None:
        return np.mean([[score(fold) for fold in run.folds] for run in chosen], axis=0)
    if any(run.predictions["ids"] != chosen[0].predictions["ids"] for run in chosen):
        raise SystemExit(f"{', '.join(str(run.path) for run in chosen)} hold different structures: no ensemble")
    truth = np.asarray(chosen[0].predictions["truth"])
    mean = np.mean([run.out_of_fold for run in chosen], axis=0)
    return np.array([np.mean(np.abs(mean[rows] - truth[rows])) for rows in test_sets])


def protocol_of(run: dict) -> str:
    if "protocol" in run:
        return run["protocol"]
    return "compute-matched" if run["settings"]["train"].get("max_minutes") else "converged"  # older files


# the recipe's sizes and dropout, and its training loss and weight decay, named in a label where
# a run departs from them
SIZES = {key: getattr(CFTConfig(), key) for key in ("d_model", "hidden", "encoder_blocks", "layers", "dropout")}
ENCODER_SIZES = ("hidden", "encoder_blocks")
# the sizes a fine-tuned CFT takes from its pretrained encoder (read_pretrained_encoder)
PRETRAINED_SIZES = [key for key in SIZES if key in ENCODER_ARCHITECTURE]
RECIPE = TrainConfig()
# the shipped encoder most fine-tuned runs start from; a run from another shipped one
# (benchmarks/results/pretraining/orbit-distance-*) is labelled with its folder
FIRST_ENCODER = "orbit-distance-fresh"


def method_label(method: str, run: dict) -> str:
    """The method with its departures from today's defaults named, e.g. ``cft [identity routing,
    radius 3]`` or ``cgcnn [l1 loss]``."""
    settings = run["settings"]
    train, variant = settings["train"], []
    if method.startswith("cft"):
        cft = settings["cft"]
        if settings.get("routing", "group") != "group":
            variant.append(f"{settings['routing']} routing")
        if not cft.get("lattice_branch", True):
            variant.append("no lattice branch")
        if not cft.get("radial_bias", True):
            variant.append("no radial bias")
        if not cft.get("positional_encoding", True):
            variant.append("no positional encoding")
        if not cft.get("environment", False):  # files from before the term record no such field
            variant.append("no environment")
        if cft.get("interactions", False):
            variant.append("gated interactions" if cft.get("interaction_gates", False) else "interactions")
        if cft.get("composition", False):
            variant.append("composition statistics")
        if cft.get("cell_statistics", False):
            variant.append("cell statistics")
        if cft.get("pair_filter", False):
            variant.append("pair filter")
        if cft.get("position_dropout", 0):
            variant.append(f"position dropout {cft['position_dropout']:g}")
        if cft.get("frame_average", "predictions") != "predictions":
            variant.append(f"frames averaged in the {cft['frame_average']}")
        if cft.get("frame_pairs", False):
            variant.append("frame pairs")
        if train.get("ema_decay"):
            variant.append(f"EMA {train['ema_decay']:g}")
        if cft["radius"] != 4.0:
            variant.append(f"radius {cft['radius']:g}")
        encoder = Path(settings.get("pretrained") or "").name
        if method == "cft-pretrained" and encoder.startswith("orbit-distance-") and encoder != FIRST_ENCODER:
            variant.append(f"encoder {encoder}")
        for key, default in SIZES.items():
            if key in ENCODER_SIZES and not cft.get("positional_encoding", True):
                continue  # there is no positional encoder to size
            if key in PRETRAINED_SIZES and method == "cft-pretrained":
                continue  # the encoder's own, named by its folder above
            if cft.get(key, default) != default:
                variant.append(f"{key} {cft[key]:g}")
    if method in ("cft", "cft-pretrained", "cgcnn"):  # the neural methods share the training recipe
        if train.get("loss", RECIPE.loss) != RECIPE.loss:
            variant.append(f"{train['loss']} loss")
        if train.get("learning_rate", RECIPE.learning_rate) != RECIPE.learning_rate:
            variant.append(f"learning rate {train['learning_rate']:g}")
        if train.get("batch_size", RECIPE.batch_size) != RECIPE.batch_size:
            variant.append(f"batch {train['batch_size']}")
        if train.get("patience", RECIPE.patience) != RECIPE.patience:
            variant.append(f"patience {train['patience']}")
        if train.get("weight_decay", RECIPE.weight_decay) != RECIPE.weight_decay:
            variant.append(f"weight decay {train['weight_decay']:g}")
        averaged = settings.get("cft", {}).get("frame_average") == "encodings"  # trains on every frame: not named twice
        if train.get("frames", RECIPE.frames) != RECIPE.frames and not (averaged and method.startswith("cft")):
            variant.append(f"trained on {train['frames']} frames")
        if settings.get("transfer_from"):
            variant.append(f"transfer from {settings['transfer_from']}")
            if settings.get("fresh_head"):
                variant.append("fresh head")
            if settings.get("fine_tune_learning_rate"):
                variant.append(f"fine-tuned at learning rate {settings['fine_tune_learning_rate']:g}")
    return method + (f" [{', '.join(variant)}]" if variant else "")


def print_by_system(runs: dict[str, dict[int, Run]]) -> None:
    """Each method's MAE over each crystal system's structures: the absolute errors of its
    out-of-fold predictions, averaged over its training seeds."""
    predictions = next(iter(next(iter(runs.values())).values())).predictions
    truth = np.asarray(predictions["truth"], dtype=np.float64)
    systems = np.array([crystal_system(int(group)) for group in predictions["group"]])
    present = [system for system in CRYSTAL_SYSTEMS if (systems == system).any()]
    print("  by crystal system (structures): " + ", ".join(f"{s} ({(systems == s).sum()})" for s in present))
    for label, seeds in runs.items():
        errors = np.mean([np.abs(run.out_of_fold - truth) for run in seeds.values()], axis=0)
        print(f"  {label:40s} " + "  ".join(f"{errors[systems == s].mean():.4f}" for s in present))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "roots", nargs="*", type=Path, default=[Path("benchmarks/results")], help="folders searched for results.json"
    )
    parser.add_argument("--protocol", choices=("converged", "compute-matched"), default="converged")
    parser.add_argument(
        "--score",
        choices=tuple(SCORES),
        default="test",
        help="test: MAE on each fold's test set; validation: each neural fit's best validation MAE; "
        "unseen (with --held-out): each fold's MAE on the held-out groups",
    )
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="compare the runs with held-out groups (--holdout-groups) instead of skipping them",
    )
    parser.add_argument(
        "--reference",
        default="cft",
        help='the method paired with every other, as labelled in the output (e.g. "cft [no environment]")',
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="score each method's training seeds as one ensemble: the MAE of their mean out-of-fold "
        "predictions on each fold's test set (test score only)",
    )
    parser.add_argument(
        "--by-system",
        action="store_true",
        help="also print each method's MAE over the structures of each crystal system (test score only)",
    )
    args = parser.parse_args()
    if args.by_system and (args.score != "test" or args.held_out or args.ensemble):
        parser.error("--by-system scores the out-of-fold test predictions; it goes with --score test alone")
    if args.ensemble and (args.score != "test" or args.held_out):
        parser.error(
            "--ensemble scores the out-of-fold test predictions; it goes with --score test, without --held-out"
        )
    if args.score == "unseen" and not args.held_out:
        parser.error("--score unseen scores the held-out groups of runs that have them: add --held-out")
    # (dataset, target, fold seed, folds, structures, held-out groups) -> method label -> training seed -> a Run
    found: dict[tuple, dict[str, dict[int, Run]]] = defaultdict(lambda: defaultdict(dict))
    for root in args.roots:
        for path in sorted(root.rglob("results.json")):
            run = json.loads(path.read_text())
            if bool(run["n_unseen"]) != args.held_out:
                continue  # held-out groups are another comparison
            if "predictions" not in run and (args.ensemble or args.by_system):
                print(f"note: {path} holds no out-of-fold predictions; skipped", file=sys.stderr)
                continue
            held_out = run.get("holdout_spec") or ",".join(map(str, run.get("holdout_groups", [])))
            key = (run["dataset"], run["target"], run["seed"], run["folds"], run["n_structures"], held_out)
            for method, result in run["results"].items():
                if method in NEURAL and protocol_of(run) != args.protocol:
                    continue
                if args.score == "validation" and not all("best_val_mae" in fold for fold in result["folds"]):
                    continue
                label, training_seed = method_label(method, run), run.get("training_seed", run["seed"])
                if (
                    method in NEURAL and training_seed in found[key][label]
                ):  # two runs of one method and seed: say which one counts
                    print(
                        f"note: {label} (training seed {training_seed}) of {key[0]} {key[1]} found again in {path}; "
                        f"that run replaces {found[key][label][training_seed].path} (name the roots to choose)",
                        file=sys.stderr,
                    )
                found[key][label][training_seed] = Run(path, result["folds"], run.get("predictions"), method)
    reference = args.reference
    score = SCORES[args.score]
    for (dataset, target, seed, folds, n, held_out), runs in sorted(found.items()):
        scored = "unseen-group MAE" if args.score == "unseen" else f"{args.score} MAE"
        if held_out:
            scored = f"groups {held_out} held out, " + (scored if args.score == "unseen" else f"seen-group {scored}")
        print(
            f"\n{dataset} {target}: {n} structures, {folds} folds (seed {seed}), neural methods {args.protocol}, "
            + scored
            + (", training seeds as one ensemble" if args.ensemble else "")
        )
        test_sets = fold_test_sets(n, folds, seed) if args.ensemble else None

        per_fold = {
            label: fold_scores([seeds[s] for s in sorted(seeds)], score, test_sets) for label, seeds in runs.items()
        }
        for label, values in per_fold.items():
            seeds = runs[label]
            line = (
                f"  {label:40s} {values.mean():.4f} ± {values.std(ddof=1):.4f}   folds {np.round(values, 4).tolist()}"
            )
            if len(seeds) > 1:
                means = [np.mean([score(fold) for fold in run.folds]) for run in seeds.values()]
                line += f"   {len(seeds)} seeds {sorted(seeds)}, seed means {min(means):.4f}-{max(means):.4f}"
            done = [fold for run in runs[label].values() for fold in run.folds if "epochs" in fold]
            if done:
                seconds = [f["train_seconds"] for f in done]
                line += (
                    f"   fit {np.mean(seconds):.0f} s ({min(seconds):.0f}-{max(seconds):.0f}), "
                    f"epochs {min(f['epochs'] for f in done)}-{max(f['epochs'] for f in done)}, "
                    f"best {min(f['best_epoch'] for f in done)}-{max(f['best_epoch'] for f in done)}"
                )
            print(line)
        if args.by_system:
            print_by_system(runs)
        if reference not in per_fold:
            continue
        for label in per_fold:
            if label == reference:
                continue
            common = sorted(set(runs[reference]) & set(runs[label]))  # pair seeds with seeds where both have them
            if args.ensemble and next(iter(runs[label].values())).method not in NEURAL:
                common = []  # a forest against the whole ensemble, not against its members of the forest's seed
            if common:
                difference = fold_scores([runs[reference][s] for s in common], score, test_sets) - fold_scores(
                    [runs[label][s] for s in common], score, test_sets
                )
            else:
                difference = per_fold[reference] - per_fold[label]
            seeds = f"seeds {common}" if common else "all seeds"
            print(
                f"  {reference} - {label:28s} {difference.mean():+.4f} ± {difference.std(ddof=1):.4f}   "
                f"{reference} better on {int((difference < 0).sum())} of {folds} folds ({seeds})"
            )


if __name__ == "__main__":
    main()
