"""The Crystal Fourier Transformer (CFT) on the basisdb store.

Layers: :mod:`basisdb.model.data` (structures to model inputs: :class:`~basisdb.model.data.StructureFeaturizer`,
standardization, frames, batching), :mod:`basisdb.model.datasets` (built-in Materials Project
datasets), :mod:`basisdb.model.modules` (the positional encoder, the one "encoder" of this package,
and other blocks), :mod:`basisdb.model.models` (the CFT), :mod:`basisdb.model.baselines` (the peers it is
measured against), :mod:`basisdb.model.training` (the one training engine, its schedules and DDP),
:mod:`basisdb.model.checkpoint`, :mod:`basisdb.model.featurizer` (the basis features as a matminer featurizer),
:mod:`basisdb.model.invariant_features` (the store as a differentiable torch layer: invariant features
of position tensors, for any model), :mod:`basisdb.model.gradients` (the CFT's input rebuilt with torch
from atomic positions, for the gradient of a prediction), :mod:`basisdb.model.cli` (the options the
commands share) and the command lines ``basisdb data | pretrain | train | evaluate | predict``.

An evaluation (``basisdb evaluate``) is split by concern: :mod:`basisdb.model.prepared` (a dataset
ready for every method), :mod:`basisdb.model.methods` (every method behind one fit/predict
protocol), :mod:`basisdb.model.transfer` (fitting another property first),
:mod:`basisdb.model.crossval` (the folds), :mod:`basisdb.model.results` (a run's configuration and
result, on disk) and :mod:`basisdb.model.report` (its table and figures).
"""

import importlib

__all__ = [
    "CFTConfig",
    "CrystalFourierTransformer",
    "CheckpointError",
    "InvariantFeatures",
    "load_checkpoint",
    "load_dataset",
    "SymmetryFourierFeaturizer",
]

_HOME = {
    "CFTConfig": "models",
    "CrystalFourierTransformer": "models",
    "CheckpointError": "checkpoint",
    "InvariantFeatures": "invariant_features",
    "load_checkpoint": "checkpoint",
    "load_dataset": "datasets",
    "SymmetryFourierFeaturizer": "featurizer",
}


def __getattr__(name: str):
    # imported on first use, so that ``python -m basisdb.model.data`` does not find that module
    # imported already (and torch is not loaded for a dataset fetch)
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
