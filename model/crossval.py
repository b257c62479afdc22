"""K-fold cross-validation of every method of a run on the same folds, at each of its training
seeds: what a run (:class:`~basisdb.model.results.RunConfig`) finds, as an
:class:`~basisdb.model.results.EvaluationResult`.

The folds are drawn once, from the run's ``seed``, over the structures outside the held-out
groups; at training seed ``t`` every method of fold ``k`` is fitted with seed ``t * 1000 + k``
(a transfer's source fit with ``t * 1000 + 999``), so that another training seed reseeds the
models and never the folds.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

from basisdb import __version__ as basisdb_version

from .datasets import DatasetError
from .methods import NEURAL, NeuralSettings, make_method
from .prepared import Prepared
from .results import EvaluationResult, FoldResult, MethodResult, RunConfig, Scores, SeedResult
from .source_fits import SourceFitCache
from .training import resolve_device
from .transfer import source_weights

__all__ = ["cross_validate"]


def cross_validate(
    data: Prepared,
    config: RunConfig,
    settings: NeuralSettings,
    holdout_groups: Sequence[int],
    log=sys.stderr,
    source: Prepared | None = None,
    source_fits: SourceFitCache | None = None,
) -> EvaluationResult:
    """Every method of ``config`` on the same ``config.folds`` folds of ``data`` (drawn from
    ``config.seed``), once per training seed; the structures of ``holdout_groups`` leave the
    folds, and each fold's models predict them as unseen.

    With ``config.train_size``, every method of fold k trains on the same random
    ``train_size`` of the fold's training structures (drawn from ``seed`` and k, whatever the
    training seed), and is tested on the whole fold: a point of a learning curve.

    With a ``source`` dataset (another property, :func:`basisdb.model.transfer.transfer_source`),
    each neural method is first fitted on all of it, and every fold's fit starts from those
    weights; a fit ``source_fits`` holds is read back instead.

    The result's ``transfer`` and ``rejected`` are left empty: what the source and the
    featurizer left out is the caller's to add.  Progress goes to ``log``, a line per fit."""
    from sklearn.model_selection import KFold

    is_held_out = np.isin(data.groups, holdout_groups)
    unseen, seen = np.flatnonzero(is_held_out), np.flatnonzero(~is_held_out)
    if len(seen) < 2 * config.folds:
        raise DatasetError(f"{len(seen)} structures outside the held-out groups cannot make {config.folds} folds")
    folds = KFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    splits = [(seen[train], seen[test]) for train, test in folds.split(seen)]
    fold_of = np.full(len(data.values), -1, dtype=np.int64)
    for fold, (_, test) in enumerate(splits):
        fold_of[test] = fold
    seeds = []
    for training_seed in config.training_seeds:
        prefix = f"seed {training_seed}  " if len(config.training_seeds) > 1 else ""
        at_seed = settings.at_seed(training_seed)
        seeds.append(_at_seed(data, config, at_seed, training_seed, splits, unseen, log, source, source_fits, prefix))
    return EvaluationResult(
        config=config,
        unit=data.unit,
        reference=data.reference,
        ids=tuple(data.ids),
        groups=data.groups,
        truth=data.values,
        held_out=is_held_out,
        fold=fold_of,
        seeds=tuple(seeds),
    )


def _at_seed(
    data: Prepared,
    config: RunConfig,
    settings: NeuralSettings,
    training_seed: int,
    splits: list[tuple[np.ndarray, np.ndarray]],
    unseen: np.ndarray,
    log,
    source: Prepared | None,
    source_fits: SourceFitCache | None,
    prefix: str,
) -> SeedResult:
    """Every method on every fold at one training seed."""
    began = time.perf_counter()
    starts, source_fit = {}, {}
    for name in config.methods if source is not None else ():
        if name in NEURAL:
            print(
                f"{prefix}{name}: fitting on the {len(source.values)} structures of the source first",
                file=log,
                flush=True,
            )
            seed = training_seed * 1000 + 999
            starts[name], source_fit[name] = source_weights(name, source, settings, seed, source_fits, log)
            how = "read back from the cache, fitted in" if source_fit[name]["cached"] else "done in"
            print(f"{prefix}{name}: source fit {how} {source_fit[name]['train_seconds']:.0f} s", file=log, flush=True)
    methods = {name: make_method(name, data, settings, starts.get(name)) for name in config.methods}
    folds = {name: [] for name in config.methods}
    out_of_fold = {name: np.full(len(data.values), np.nan) for name in config.methods}
    unseen_predictions = {name: [] for name in config.methods}
    for fold, (train, test) in enumerate(splits):
        if config.train_size is not None and config.train_size < len(train):
            train = np.sort(np.random.default_rng([config.seed, fold]).choice(train, config.train_size, replace=False))
        for name, method in methods.items():
            fit_began = time.perf_counter()
            method.fit(train, training_seed * 1000 + fold)
            predicted = method.predict(test)
            predicted_unseen = method.predict(unseen) if len(unseen) else None
            record = FoldResult(
                fold=fold,
                n_train=int(len(train)),
                n_test=int(len(test)),
                seconds=time.perf_counter() - fit_began,
                test=Scores.of(data.values[test], predicted),
                unseen=Scores.of(data.values[unseen], predicted_unseen) if len(unseen) else None,
                **method.info,
            )
            out_of_fold[name][test] = predicted
            if len(unseen):
                unseen_predictions[name].append(predicted_unseen)
            folds[name].append(record)
            print(prefix + _progress(record, name, config.folds), file=log, flush=True)
    results = {
        name: MethodResult(
            folds=tuple(folds[name]),
            out_of_fold=out_of_fold[name],
            unseen=np.array(unseen_predictions[name], dtype=np.float64).reshape(len(splits), len(unseen)),
            source_fit=source_fit.get(name),
        )
        for name in config.methods
    }
    seconds = {**data.timings, "evaluation": time.perf_counter() - began}
    return SeedResult(training_seed, results, _environment(settings), seconds)


def _progress(record: FoldResult, name: str, folds: int) -> str:
    line = (
        f"fold {record.fold + 1}/{folds}  {name:15s} MAE {record.test.mae:.4f}  "
        f"RMSE {record.test.rmse:.4f}  R2 {record.test.r2:.3f}"
    )
    if record.unseen is not None:
        line += f"  unseen-group MAE {record.unseen.mae:.4f}"
    return line + f"  ({record.seconds:.1f} s)"


def _environment(settings: NeuralSettings) -> dict:
    """The machine, the threads and the versions an evaluation ran with."""
    import sklearn

    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "basisdb": basisdb_version,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "device": str(resolve_device(settings.device)),
    }
