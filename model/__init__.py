"""The Crystal Fourier Transformer (CFT) on the basisdb store.

Layers: :mod:`model.data` (structures to model inputs: :class:`~model.data.StructureFeaturizer`,
standardization, frames, batching), :mod:`model.datasets` (built-in Materials Project
datasets), :mod:`model.modules` (the positional encoder, the one "encoder" of this package,
and other blocks), :mod:`model.models` (the CFT), :mod:`model.baselines` (the peers it is
measured against), :mod:`model.training` (the one training engine, its schedules and DDP),
:mod:`model.checkpoint`, :mod:`model.featurizer` (the basis features as a matminer featurizer),
:mod:`model.cli` (the options the commands share) and the command
lines ``python -m model.data | model.pretrain | model.train | model.evaluate | model.predict``.
"""

import importlib

__all__ = [
    "CFTConfig",
    "CrystalFourierTransformer",
    "CheckpointError",
    "load_checkpoint",
    "load_dataset",
    "SymmetryFourierFeaturizer",
]

_HOME = {
    "CFTConfig": "models",
    "CrystalFourierTransformer": "models",
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_dataset": "datasets",
    "SymmetryFourierFeaturizer": "featurizer",
}


def __getattr__(name: str):
    # imported on first use, so that ``python -m model.data`` does not find model.data
    # imported already (and torch is not loaded for a dataset fetch)
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
