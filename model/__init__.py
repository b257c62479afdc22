"""The Crystal Fourier Transformer (CFT) on the basisdb store.

Layers: :mod:`model.data` (structures, standardization, frames, datasets, batching),
:mod:`model.modules` (positional encoder, blocks), :mod:`model.models` (the CFT),
:mod:`model.training` (loops, schedules, checkpoints) and the command lines
``python -m model.pretrain | model.train | model.predict``.
"""

from .checkpoint import CheckpointError, load_checkpoint
from .models import CFTConfig, CrystalFourierTransformer

__all__ = ["CFTConfig", "CrystalFourierTransformer", "CheckpointError", "load_checkpoint"]
