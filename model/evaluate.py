"""``basisdb evaluate --dataset NAME --target T --folds 5 --seed S [--holdout-groups SPEC]``

Cross-validates the CFT against its peers on the same random folds of a built-in dataset:
the training mean, a random forest on Magpie composition statistics, the same forest with five
simple structure features added (density, volume per atom, packing fraction, space group,
primitive sites), a CGCNN trained from scratch, and (with ``--pretrained``) the CFT fine-tuned
from the orbit-distance encoder.

Neural models hold out 10% of each training fold for early stopping and train under one of
two protocols: to convergence (the default; ``--patience``, ``--epochs`` as a cap) or
compute-matched (``--minutes M``: the same wall-time budget for every neural method).  Each
fit's wall time and epochs are recorded.  ``--training-seed`` reseeds the models on the same
folds, for results over several seeds (``benchmarks/paired_folds.py`` pairs them by fold).

With ``--holdout-groups`` (``2,14,15``, ``143-194`` or a crystal system such as ``cubic``),
every structure of those space groups leaves the folds and forms an unseen-group test set that
each fold's models also predict: MAE on seen groups (the folds' test sets) against MAE on
groups no model was trained on.

With ``--transfer-from DATASET:TARGET`` each neural method is first fitted to convergence on
another property (its structures that share a reduced formula with the evaluated dataset, or
lie in a held-out group, left out), and every fold's fit starts from those weights (with
``--fresh-head``, all but the output head's, which starts afresh; with ``--fine-tune-lr``, at
a learning rate of its own). A source fit is kept in the cache directory (``--encodings``)
per configuration, and a later run that would fit it again (the other target of the same
dataset, say) reads its weights back (:mod:`basisdb.model.source_fits`; ``--refit-source``
fits it again).

Writes, under ``--out``: ``results.json`` (every fold, every number), ``results.md`` (the
table), ``parity_<target>.png`` and, with held-out groups, ``seen_vs_unseen_<target>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from basisdb import (
    BasisStore,
    command_parser,
    get_setting,
    run_command,
)

from .baselines import (
    CGCNN,
    CGCNNConfig,
    CompositionForest,
    MeanBaseline,
    crystal_graph,
    graph_collate,
    magpie_features,
    structure_features,
)
from .checkpoint import load_pretrained_encoder, read_pretrained_encoder
from .cli import (
    add_model_arguments,
    add_seed_argument,
    add_structure_arguments,
    add_training_arguments,
    cft_config_from,
    option_type,
    parse_groups,
    parse_option,
    positive,
    set_threads,
    train_config_from,
)
from .data import ROUTINGS, StructureFeaturizer
from .datasets import DATASETS, DatasetError, LabelledStructures, load_dataset
from .encoding_cache import EncodingCache, add_cache_arguments, cache_from_arguments
from .models import CFTConfig, CrystalFourierTransformer
from .source_fits import SourceFitCache, rows_digest
from .training import (
    DistributedContext,
    Regression,
    TrainConfig,
    cft_collate,
    fit,
    predict_normalized,
    resolve_device,
)

__all__ = ["METHODS", "scores", "evaluate", "plots", "main"]

METHODS = ("mean", "composition-rf", "magpie-structure-rf", "cgcnn", "cft", "cft-pretrained")


def scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and the coefficient of determination R^2."""
    error = np.asarray(predicted) - np.asarray(truth)
    spread = np.sum((truth - np.mean(truth)) ** 2)
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": float(1 - np.sum(error**2) / spread) if spread > 0 else float("nan"),
    }


@dataclass(frozen=True, eq=False)
class Prepared:
    """A dataset ready for every method, rows aligned.

    Attributes:
        values: (n,) float64 targets; groups: (n,) int64 space groups (spglib, at the
        featurizer's symprec); items: CFT encodings; graphs: CGCNN graphs; composition: (n, 132)
        Magpie features; structure: (n, 5) :func:`basisdb.model.baselines.structure_features`; timings: seconds
        spent preparing each representation.
    """

    ids: list[str]
    values: np.ndarray
    groups: np.ndarray
    items: list
    graphs: list
    composition: np.ndarray
    structure: np.ndarray
    timings: dict[str, float]

    def subset(self, rows: np.ndarray) -> Prepared:
        """The rows ``rows`` (indices or a boolean mask) of every representation."""
        rows = np.arange(len(self.values))[rows]
        return Prepared(
            ids=[self.ids[i] for i in rows],
            values=self.values[rows],
            groups=self.groups[rows],
            items=[self.items[i] for i in rows],
            graphs=[self.graphs[i] for i in rows],
            composition=self.composition[rows],
            structure=self.structure[rows],
            timings=self.timings,
        )


def prepare(
    dataset, featurizer: StructureFeaturizer, report=sys.stderr, cache: EncodingCache | None = None, workers: int = 1
) -> tuple[Prepared, list[tuple[str, str]]]:
    """Encode every structure (read back from ``cache`` where it holds them, in ``workers``
    processes otherwise); those the featurizer rejects are returned with the reason (and
    reported), and no method sees them, so that all methods share the same rows."""
    began = time.perf_counter()
    items, rejected = featurizer.encode_many(
        zip(dataset.ids, dataset.structures), report=report, cache=cache, workers=workers
    )
    encode_seconds = time.perf_counter() - began
    kept = {item.label: i for i, item in enumerate(items)}
    rows = np.array([i for i, material in enumerate(dataset.ids) if material in kept], dtype=np.int64)
    dataset = dataset.subset(rows)
    began = time.perf_counter()
    graphs = [crystal_graph(structure) for structure in dataset.structures]
    graph_seconds = time.perf_counter() - began
    began = time.perf_counter()
    composition = magpie_features(dataset.formulas)
    magpie_seconds = time.perf_counter() - began
    began = time.perf_counter()
    structure = structure_features(
        dataset.structures, [item.group for item in items], [_primitive_sites(item) for item in items]
    )
    prepared = Prepared(
        ids=dataset.ids,
        values=dataset.values,
        groups=np.array([item.group for item in items], dtype=np.int64),
        items=items,
        graphs=graphs,
        composition=composition,
        structure=structure,
        timings={
            "cft_encoding": encode_seconds,
            "cgcnn_graphs": graph_seconds,
            "magpie_features": magpie_seconds,
            "structure_features": time.perf_counter() - began,
        },
    )
    return prepared, rejected


def parse_transfer(text: str) -> tuple[str, str]:
    """``DATASET:TARGET`` of ``--transfer-from``, both checked against the built-in datasets."""
    name, _, target = text.partition(":")
    if name not in DATASETS:
        raise ValueError(
            f"{text!r}: no built-in dataset {name!r}; give DATASET:TARGET, DATASET one of {sorted(DATASETS)}"
        )
    if target not in DATASETS[name].targets:
        raise ValueError(f"{text!r}: {name} has no target {target!r}; it has {sorted(DATASETS[name].targets)}")
    return name, target


def transfer_source(
    name: str,
    target: str,
    evaluated: LabelledStructures,
    holdout: Sequence[int],
    featurizer: StructureFeaturizer,
    report=sys.stderr,
    cache: EncodingCache | None = None,
    workers: int = 1,
    limit: int | None = None,
    seed: int = 0,
    directory: str | os.PathLike | None = None,
) -> tuple[Prepared, dict]:
    """Another property's dataset (read from ``directory``, default the dataset folder),
    prepared for a transfer to the ``evaluated`` one: without every structure whose reduced
    formula the evaluated dataset has (so that no compound of a test fold is seen, in any cell,
    with the other label) or whose space group is held out.  Returns it with the record of what
    was left out."""
    source = load_dataset(name, target, directory)
    source.report_rejected(report)
    if limit:
        source = source.sample(limit, seed)
    formulas = set(evaluated.formulas)
    kept = np.array([i for i, formula in enumerate(source.formulas) if formula not in formulas], dtype=np.int64)
    print(
        f"transfer from {name} {target}: {len(source) - len(kept)} of its {len(source)} structures share a "
        f"formula with {evaluated.dataset} and are left out; encoding the rest ...",
        file=report,
    )
    prepared, rejected = prepare(source.subset(kept), featurizer, report, cache, workers)
    held_out = np.isin(prepared.groups, holdout)
    record = {
        "dataset": name,
        "target": target,
        "unit": source.unit,
        "n_structures": int((~held_out).sum()),
        "left_out_same_formula": int(len(source) - len(kept)),
        "left_out_held_out_groups": int(held_out.sum()),
        "rejected": len(source.rejected) + len(rejected),
    }
    return prepared.subset(~held_out), record


def _primitive_sites(item) -> int:
    """Sites in the primitive cell: the standardized cell's (the atoms kept times their
    centring copies) over its lattice points (the setting's operations per point-group
    operation)."""
    setting = get_setting(hall=item.hall_number)
    return item.n_atoms * item.n_copies * setting.point_group_order // setting.n_operations


@dataclass(frozen=True)
class NeuralSettings:
    train: TrainConfig
    cft: CFTConfig
    pretrained: dict | None
    cgcnn: CGCNNConfig = CGCNNConfig()
    validation_fraction: float = 0.1
    device: str | None = None
    fresh_head: bool = False  # a transferred fit starts its output head afresh, not from the source's
    fine_tune_learning_rate: float | None = None  # a transferred fit's peak learning rate (None: train's)

    def fine_tuning(self) -> NeuralSettings:
        """The settings of a fit that starts from a source fit's weights."""
        if self.fine_tune_learning_rate is None:
            return self
        return replace(self, train=replace(self.train, learning_rate=self.fine_tune_learning_rate))


def _fit_neural(
    model,
    items: Sequence,
    values: np.ndarray,
    train: np.ndarray,
    predict: Sequence[np.ndarray],
    settings: NeuralSettings,
    seed: int,
    collate_fn,
) -> tuple[list[np.ndarray], dict]:
    context = DistributedContext(settings.device)
    order = np.random.default_rng(seed).permutation(train)
    n_val = max(1, int(round(settings.validation_fraction * len(order))))
    val, fit_rows = order[:n_val], order[n_val:]
    config = TrainConfig(**{**settings.train.to_dict(), "seed": seed})
    task = Regression(
        [items[i] for i in fit_rows],
        values[fit_rows],
        [items[i] for i in val],
        values[val],
        collate_fn,
        config.loss,
        model.training_frames(config.frames),
    )
    if isinstance(model, CrystalFourierTransformer):
        model.record_training_groups(items[i].group for i in fit_rows)
    began = time.perf_counter()
    result = fit(model, task, config, context)
    train_seconds = time.perf_counter() - began
    outputs, predict_seconds = [], 0.0
    for rows in predict:
        began = time.perf_counter()
        normalized = predict_normalized(model, [items[i] for i in rows], context.device, collate_fn=collate_fn)
        predict_seconds += time.perf_counter() - began
        outputs.append(task.normalization.restore(normalized))
    epochs = len(result.history)
    info = {
        "epochs": epochs,
        "best_epoch": result.best_epoch,
        "best_val_mae": result.best_val_mae,  # what a variant is chosen on; the test folds stay unseen
        "train_seconds": train_seconds,
        "train_structures_per_second": epochs * len(fit_rows) / train_seconds,
        "predict_structures_per_second": sum(len(r) for r in predict) / max(predict_seconds, 1e-9),
    }
    return outputs, info


def _method(
    name: str, data: Prepared, settings: NeuralSettings, start: dict | None = None
) -> Callable[[np.ndarray, Sequence[np.ndarray], int], tuple[list[np.ndarray], dict]]:
    """fit-and-predict for one method: (train rows, row sets to predict, seed) -> (predictions, info).
    ``start``: the initial weights of a neural method (:func:`source_weights`)."""
    if name == "mean":
        return lambda train, predict, seed: (
            [MeanBaseline().fit(data.values[train]).predict(len(rows)) for rows in predict],
            {},
        )
    if name in ("composition-rf", "magpie-structure-rf"):
        features = data.composition if name == "composition-rf" else np.hstack([data.composition, data.structure])

        def forest(train, predict, seed):
            model = CompositionForest(seed=seed, n_jobs=torch.get_num_threads()).fit(
                features[train], data.values[train]
            )
            return [model.predict(features[rows]) for rows in predict], {}

        return forest
    if name in NEURAL:
        return _neural(name, data, settings, start)
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")


# the neural methods: where their inputs are kept in a Prepared dataset, and how to batch them
NEURAL = {
    "cgcnn": ("graphs", graph_collate),
    "cft": ("items", cft_collate),
    "cft-pretrained": ("items", cft_collate),
}


def _new_model(name: str, settings: NeuralSettings):
    if name == "cgcnn":
        return CGCNN(settings.cgcnn)
    model = CrystalFourierTransformer(settings.cft)
    if name == "cft-pretrained":
        load_pretrained_encoder(model, settings.pretrained)
    return model


def _start_from(model: torch.nn.Module, start: dict, fresh_head: bool) -> None:
    """Load the source fit's weights ``start``; with ``fresh_head``, all but the output head's
    (both networks end in a ``head``), which keeps its fresh initialization."""
    if not fresh_head:
        model.load_state_dict(start)
        return
    model.load_state_dict({key: value for key, value in start.items() if not key.startswith("head.")}, strict=False)


def _neural(name: str, data: Prepared, settings: NeuralSettings, start: dict | None):
    """fit-and-predict of a neural method, each fit from fresh weights, or from ``start`` (a
    state dict) where the method is transferred from another property."""
    field, collate_fn = NEURAL[name]

    def fit_predict(train, predict, seed):
        torch.manual_seed(seed)
        model = _new_model(name, settings)
        fitting = settings
        if start is not None:
            _start_from(model, start, settings.fresh_head)
            fitting = settings.fine_tuning()
        return _fit_neural(model, getattr(data, field), data.values, train, predict, fitting, seed, collate_fn)

    return fit_predict


def source_fit_description(name: str, source: Prepared, settings: NeuralSettings, seed: int) -> dict:
    """What the source fit of ``name`` depends on, besides the encoding and the code (:class:`SourceFitCache`)."""
    return {
        "method": name,
        "source_rows": rows_digest(source.ids, source.values),
        "model": vars(settings.cgcnn) if name == "cgcnn" else settings.cft.to_dict(),
        "train": settings.train.to_dict(),
        "validation_fraction": settings.validation_fraction,
        "seed": seed,
        "device": str(resolve_device(settings.device)),
    }


def source_weights(
    name: str,
    source: Prepared,
    settings: NeuralSettings,
    seed: int,
    cache: SourceFitCache | None = None,
    log=sys.stderr,
) -> tuple[dict, dict]:
    """A neural method fitted to convergence on every structure of ``source`` (10% of them
    validating): its weights, where the folds' fits of a transfer start, and the fit's record
    (``cached``: whether it was read back from ``cache`` rather than fitted here).  Runs that
    need one fit at the same time fit it once (:meth:`SourceFitCache.claimed`)."""
    if cache is None:
        state, info = _fit_source(name, source, settings, seed)
        return state, {**info, "cached": False}
    configuration = cache.configuration(source_fit_description(name, source, settings, seed))
    with cache.claimed(configuration, log):  # a run fitting it now holds the lock: wait, then read
        found = cache.load(configuration)
        if found is not None:
            return found[0], {**found[1], "cached": True}
        state, info = _fit_source(name, source, settings, seed)
        cache.save(configuration, state, info)
    return state, {**info, "cached": False}


def _fit_source(name: str, source: Prepared, settings: NeuralSettings, seed: int) -> tuple[dict, dict]:
    """:func:`source_weights`, fitted here: the state dict and the fit's record."""
    field, collate_fn = NEURAL[name]
    torch.manual_seed(seed)
    model = _new_model(name, settings)
    rows = np.arange(len(source.values))
    _, info = _fit_neural(model, getattr(source, field), source.values, rows, [], settings, seed, collate_fn)
    info.pop("predict_structures_per_second")  # it predicts nothing
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    return state, info


def evaluate(
    data: Prepared,
    methods: Sequence[str],
    folds: int,
    seed: int,
    holdout: Sequence[int],
    settings: NeuralSettings,
    log=sys.stderr,
    training_seed: int | None = None,
    source: Prepared | None = None,
    source_fits: SourceFitCache | None = None,
) -> dict:
    """K-fold cross-validation of every method on the same folds (from ``seed``); the models
    of fold k are seeded with ``training_seed * 1000 + k`` (default: ``seed``).

    With a ``source`` dataset (another property, :func:`transfer_source`), each neural method
    is first fitted on all of it (seeded with ``training_seed * 1000 + 999``), and every fold's
    fit starts from those weights; a fit ``source_fits`` holds is read back instead."""
    training_seed = seed if training_seed is None else training_seed
    from sklearn.model_selection import KFold

    unseen = np.flatnonzero(np.isin(data.groups, holdout))
    seen = np.flatnonzero(~np.isin(data.groups, holdout))
    if len(seen) < 2 * folds:
        raise DatasetError(f"{len(seen)} structures outside the held-out groups cannot make {folds} folds")
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(seen))
    out = {
        name: {"folds": [], "out_of_fold": np.full(len(data.values), np.nan), "unseen_predictions": []}
        for name in methods
    }
    starts = {}
    for name in methods if source is not None else ():
        if name in NEURAL:
            print(f"{name}: fitting on the {len(source.values)} structures of the source first", file=log, flush=True)
            starts[name], fitted = source_weights(name, source, settings, training_seed * 1000 + 999, source_fits, log)
            how = "read back from the cache, fitted in" if fitted["cached"] else "done in"
            print(f"{name}: source fit {how} {fitted['train_seconds']:.0f} s", file=log, flush=True)
            out[name]["source_fit"] = fitted
    runs = {name: _method(name, data, settings, starts.get(name)) for name in methods}
    for fold, (train_pos, test_pos) in enumerate(splits):
        train, test = seen[train_pos], seen[test_pos]
        for name in methods:
            began = time.perf_counter()
            predictions, info = runs[name](
                train, [test, unseen] if len(unseen) else [test], training_seed * 1000 + fold
            )
            record = {
                "fold": fold,
                "n_train": int(len(train)),
                "n_test": int(len(test)),
                "seconds": time.perf_counter() - began,
                "test": scores(data.values[test], predictions[0]),
                **info,
            }
            out[name]["out_of_fold"][test] = predictions[0]
            if len(unseen):
                record["unseen"] = scores(data.values[unseen], predictions[1])
                out[name]["unseen_predictions"].append(predictions[1])
            out[name]["folds"].append(record)
            line = (
                f"fold {fold + 1}/{folds}  {name:15s} MAE {record['test']['mae']:.4f}  "
                f"RMSE {record['test']['rmse']:.4f}  R2 {record['test']['r2']:.3f}"
            )
            if len(unseen):
                line += f"  unseen-group MAE {record['unseen']['mae']:.4f}"
            print(line + f"  ({record['seconds']:.1f} s)", file=log, flush=True)
    for name in methods:
        folds_of = out[name]["folds"]
        summary = {}
        for part in ("test", "unseen") if len(unseen) else ("test",):
            for metric in ("mae", "rmse", "r2"):
                values = [f[part][metric] for f in folds_of]
                summary[f"{part}_{metric}"] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
        summary["seconds"] = float(sum(f["seconds"] for f in folds_of))
        for key in ("train_structures_per_second", "predict_structures_per_second", "epochs"):
            if key in folds_of[0]:
                summary[key] = float(np.mean([f[key] for f in folds_of]))
        out[name]["summary"] = summary
    return {"methods": out, "seen": seen, "unseen": unseen}


def _markdown(report: dict) -> str:
    unseen = report["n_unseen"] > 0
    lines = [
        f"# {report['dataset']} / {report['target']} ({report['unit']}): "
        f"{report['folds']}-fold CV, seed {report['seed']}",
        "",
        f"{report['n_structures']} structures ({report['n_seen']} in folds, "
        f"{report['n_unseen']} in held-out groups {report['holdout_spec'] or '-'}); "
        f"{len(report['rejected'])} rejected. Command: `{report['command']}`",
        "",
        "| method | MAE | RMSE | R^2 |" + (" unseen-group MAE | unseen / seen |" if unseen else "") + " wall (s) |",
        "|---|---|---|---|" + ("---|---|" if unseen else "") + "---|",
    ]
    for name, result in report["results"].items():
        s = result["summary"]
        row = (
            f"| {name} | {s['test_mae']['mean']:.4f} ± {s['test_mae']['std']:.4f} | "
            f"{s['test_rmse']['mean']:.4f} ± {s['test_rmse']['std']:.4f} | "
            f"{s['test_r2']['mean']:.3f} ± {s['test_r2']['std']:.3f} |"
        )
        if unseen:
            row += (
                f" {s['unseen_mae']['mean']:.4f} ± {s['unseen_mae']['std']:.4f} | "
                f"{s['unseen_mae']['mean'] / s['test_mae']['mean']:.2f} |"
            )
        lines.append(row + f" {s['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plots(report: dict, out: Path) -> list[Path]:
    """The figures of one evaluation, from its report (``results.json``) alone, so that any
    results file can be re-plotted by the current code: the parity plot of every method's
    out-of-fold predictions and, with held-out groups, seen- against unseen-group MAE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target, unit = report["target"], report["unit"]
    predictions = report["predictions"]
    methods = list(report["results"])
    held_out = np.asarray(predictions["held_out"], dtype=bool)
    truth = np.asarray(predictions["truth"], dtype=float)[~held_out]
    predicted = {
        name: np.asarray([np.nan if v is None else v for v in predictions["out_of_fold"][name]], dtype=float)[~held_out]
        for name in methods
    }
    everything = np.concatenate([truth, *predicted.values()])
    low, high = float(np.nanmin(everything)), float(np.nanmax(everything))
    pad = 0.03 * (high - low)
    protocol = report.get(
        "protocol", "compute-matched" if report["settings"]["train"].get("max_minutes") else "converged"
    )
    scope = f", groups {report['holdout_spec']} held out" if report["n_unseen"] else ""
    written = []
    width = 3.0 * len(methods)  # inches
    title = textwrap.wrap(  # to the figure's width, at about 12 characters an inch at 10 pt
        f"{report['dataset']} / {target}: {report['folds']}-fold cross-validation, {protocol}{scope}",
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
        summary = report["results"][name]["summary"]
        ax.set_title(f"{name}\nMAE {summary['test_mae']['mean']:.3f}, R² {summary['test_r2']['mean']:.2f}", fontsize=9)
        ax.set_xlabel(f"DFT value ({unit})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"predicted, out of fold ({unit})", fontsize=8)
    fig.suptitle("\n".join(title), fontsize=10)
    path = out / f"parity_{target}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    if report["n_unseen"]:
        fig, ax = plt.subplots(figsize=(1.3 * len(methods) + 2.5, 3.8), layout="constrained")
        x = np.arange(len(methods))
        for offset, part, label in (
            (-0.2, "test_mae", "seen groups (CV test folds)"),
            (0.2, "unseen_mae", f"unseen groups {report['holdout_spec']}"),
        ):
            means = [report["results"][m]["summary"][part]["mean"] for m in methods]
            stds = [report["results"][m]["summary"][part]["std"] for m in methods]
            ax.bar(x + offset, means, 0.4, yerr=stds, capsize=3, label=label)
        ax.set_xticks(x, methods, fontsize=8, rotation=20, ha="right")
        ax.set_ylabel(f"MAE ({unit})")
        ax.set_title(f"{report['dataset']} / {target}: seen vs unseen space groups ({protocol})", fontsize=10)
        ax.legend(fontsize=8, title=f"bars: mean ± sd over the {report['folds']} folds", title_fontsize=8)
        path = out / f"seen_vs_unseen_{target}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",")]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    return methods


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("basisdb evaluate", __doc__)
    parser.add_argument(
        "--dataset", required=True, choices=sorted(DATASETS), help="a built-in dataset (basisdb data list)"
    )
    parser.add_argument("--target", required=True, help="for example log10_K_VRH (see basisdb data list)")
    parser.add_argument("--folds", type=positive(), default=5, help="folds of the cross-validation, at least 2")
    add_seed_argument(parser, "the folds (and of the models, without --training-seed)")
    parser.add_argument(
        "--training-seed",
        type=int,
        help="seed of the neural models' initialization and batches, and of the forests (default: --seed); "
        "the folds stay those of --seed",
    )
    parser.add_argument(
        "--holdout-groups", metavar="SPEC", help="space groups kept out of training: '2,14,15', '143-194', 'cubic'"
    )
    parser.add_argument(
        "--methods",
        type=option_type(_methods),
        help=f"comma-separated subset of {','.join(METHODS)} (default: all; cft-pretrained needs --pretrained)",
    )
    parser.add_argument(
        "--pretrained",
        type=Path,
        help="orbit-distance pretrained encoder (basisdb pretrain); the CFT then takes its architecture",
    )
    parser.add_argument(
        "--transfer-from",
        metavar="DATASET:TARGET",
        type=option_type(parse_transfer),
        help="fit each neural method on another property first (for example flla_2015:formation_energy_per_atom; "
        "its structures that share a formula with --dataset, or lie in a held-out group, left out) and start "
        "every fold's fit from those weights",
    )
    parser.add_argument(
        "--fresh-head",
        action="store_true",
        help="with --transfer-from: every fold's fit starts its output head afresh, the rest from the source fit",
    )
    parser.add_argument(
        "--fine-tune-lr",
        type=positive(float),
        help="with --transfer-from: the peak learning rate of every fold's fit (default: --lr, which the "
        "source fit uses)",
    )
    parser.add_argument(
        "--refit-source",
        action="store_true",
        help="fit --transfer-from's source again rather than read its weights back from the cache directory "
        "(--encodings), where a fit is kept per configuration and reused by later runs",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: evaluation/<dataset>-<target>[-holdout])")
    parser.add_argument(
        "--limit",
        type=positive(),
        help="use a random subset of this many structures, of --transfer-from's dataset too (quick checks)",
    )
    add_model_arguments(parser)
    add_structure_arguments(parser)
    add_training_arguments(parser)
    ablation = parser.add_argument_group("ablations of the CFT (what carries its result)")
    ablation.add_argument(
        "--routing",
        choices=ROUTINGS,
        default="group",
        help="identity: plain Fourier features of the P1 basis instead of the group's invariant functions",
    )
    ablation.add_argument(
        "--no-lattice-branch", action="store_true", help="drop the lattice branch of the positional encoder"
    )
    ablation.add_argument("--no-radial-bias", action="store_true", help="drop the radial pair bias of the attention")
    ablation.add_argument(
        "--no-positions",
        action="store_true",
        help="drop the positional encoding: atom tokens carry elements and environments alone",
    )
    add_cache_arguments(parser)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    methods = args.methods or [m for m in METHODS if m != "cft-pretrained" or args.pretrained]
    if "cft-pretrained" in methods and not args.pretrained:
        parser.error("cft-pretrained needs --pretrained CKPT (written by basisdb pretrain)")
    if args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    for option, given in (
        ("--refit-source", args.refit_source),
        ("--fresh-head", args.fresh_head),
        ("--fine-tune-lr", args.fine_tune_lr),
    ):
        if given and not args.transfer_from:
            parser.error(f"{option} applies to the transfer of --transfer-from, which is not given")
    if args.transfer_from and args.pretrained:
        parser.error("--transfer-from and --pretrained both set the neural methods' initial weights; give one")
    if args.transfer_from and not any(m in NEURAL for m in methods):
        parser.error(f"--transfer-from starts the neural methods ({', '.join(NEURAL)}) elsewhere; --methods names none")
    if args.transfer_from and args.transfer_from == (args.dataset, args.target):
        parser.error("--transfer-from names the evaluated dataset and target: its test folds would be trained on")
    if args.pretrained and args.no_positions:
        parser.error("--pretrained fine-tunes the positional encoder, which --no-positions drops")
    if args.position_dropout and args.no_positions:
        parser.error("--position-dropout leaves out the positional encoding at times; --no-positions drops it always")
    holdout = parse_option(parser, "--holdout-groups", parse_groups, args.holdout_groups) if args.holdout_groups else []
    training_seed = args.seed if args.training_seed is None else args.training_seed
    set_threads(args.threads)
    store = BasisStore.open(args.store)
    featurizer = StructureFeaturizer(store, args.radius, args.symprec, args.invariance, routing=args.routing)
    cft_config = cft_config_from(
        args,
        featurizer.n_slots,
        lattice_branch=not args.no_lattice_branch,
        radial_bias=not args.no_radial_bias,
        positional_encoding=not args.no_positions,
    )
    pretrained = None
    if args.pretrained:  # then scratch and fine-tuned CFTs differ only in initialization
        pretrained, cft_config = read_pretrained_encoder(args.pretrained, store, cft_config)
    settings = NeuralSettings(
        train=train_config_from(args, seed=training_seed, cft=cft_config),
        cft=cft_config,
        pretrained=pretrained,
        device=args.device,
        fresh_head=args.fresh_head,
        fine_tune_learning_rate=args.fine_tune_lr,
    )
    dataset = load_dataset(args.dataset, args.target)
    dataset.report_rejected()
    if args.limit:
        dataset = dataset.sample(args.limit, args.seed)
    print(f"{dataset.dataset}: {len(dataset)} structures; encoding, graphs, composition features ...", file=sys.stderr)
    cache = cache_from_arguments(args, featurizer)
    data, rejected = prepare(dataset, featurizer, cache=cache, workers=args.threads or 1)
    source, transfer = None, None
    if args.transfer_from:
        source, transfer = transfer_source(
            *args.transfer_from,
            dataset,
            holdout,
            featurizer,
            cache=cache,
            workers=args.threads or 1,
            limit=args.limit,
            seed=args.seed,
        )
    source_fits = SourceFitCache.at(args.encodings, EncodingCache.of(featurizer).configuration, not args.refit_source)
    began = time.perf_counter()
    evaluation = evaluate(
        data,
        methods,
        args.folds,
        args.seed,
        holdout,
        settings,
        training_seed=training_seed,
        source=source,
        source_fits=source_fits if source is not None else None,
    )
    wall = time.perf_counter() - began
    out = args.out or Path("evaluation") / f"{args.dataset}-{args.target}{'-holdout' if holdout else ''}"
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "dataset": args.dataset,
        "target": args.target,
        "unit": dataset.unit,
        "reference": dataset.reference,
        "command": "basisdb evaluate " + " ".join(argv),
        "folds": args.folds,
        "seed": args.seed,
        "training_seed": training_seed,
        "protocol": "compute-matched" if args.minutes else "converged",
        "holdout_spec": args.holdout_groups,
        "holdout_groups": holdout,
        "n_structures": int(len(data.values)),
        "n_seen": int(len(evaluation["seen"])),
        "n_unseen": int(len(evaluation["unseen"])),
        "rejected": [{"id": material, "reason": reason} for material, reason in dataset.rejected + rejected],
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        },
        "preparation_seconds": data.timings,
        "evaluation_seconds": wall,
        "settings": {
            "symprec": args.symprec,
            "invariance": args.invariance,
            "routing": args.routing,
            "train": settings.train.to_dict(),
            "cft": settings.cft.to_dict(),
            "cgcnn": vars(settings.cgcnn),
            "pretrained": str(args.pretrained) if args.pretrained else None,
            "transfer_from": ":".join(args.transfer_from) if args.transfer_from else None,
            "fresh_head": args.fresh_head,
            "fine_tune_learning_rate": args.fine_tune_lr,
        },
        "transfer": transfer,
        "results": {
            name: {key: r[key] for key in ("summary", "folds", "source_fit") if key in r}
            for name, r in evaluation["methods"].items()
        },
        "predictions": {  # per structure, so that plots and other statistics can be redone
            "ids": data.ids,
            "group": data.groups.tolist(),
            "truth": data.values.tolist(),
            "held_out": np.isin(np.arange(len(data.values)), evaluation["unseen"]).tolist(),
            "out_of_fold": {
                name: [None if np.isnan(v) else float(v) for v in r["out_of_fold"]]
                for name, r in evaluation["methods"].items()
            },
        },
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    table = _markdown(report)
    (out / "results.md").write_text(table)
    pictures = plots(report, out)
    print(table)
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, " + ", ".join(str(p) for p in pictures))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
