"""A transfer from another property: its dataset, prepared without what would leak the
evaluated one's test folds, and each neural method fitted on it first, once per configuration
(:class:`~basisdb.model.source_fits.SourceFitCache`), so that every fold's fit starts from
those weights."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np
import torch

from .data import StructureFeaturizer
from .datasets import DATASETS, LabelledStructures, load_dataset
from .encoding_cache import EncodingCache
from .methods import NEURAL, NeuralSettings, fit_network, new_network
from .prepared import Prepared, prepare
from .source_fits import SourceFitCache, rows_digest
from .training import resolve_device

__all__ = ["parse_transfer", "transfer_source", "source_fit_description", "source_weights"]


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
    model = new_network(name, settings)
    rows = np.arange(len(source.values))
    _, _, info = fit_network(model, getattr(source, field), source.values, rows, settings, seed, collate_fn)
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    return state, info
