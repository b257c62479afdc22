"""The fit loop's budget, on a real CFT and real crystals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from basisdb import BasisStore
from model.data import StructureEncoder
from model.models import CFTConfig, CrystalFourierTransformer
from model.training import DistributedContext, TrainConfig, fit


@pytest.fixture(scope="module")
def encoded(small_store, real_crystals):
    with BasisStore.open(small_store) as store:
        encoder = StructureEncoder(store, 2.0)
        items, _ = encoder.encode_many([(cell.label, cell) for cell in real_crystals[:24]], progress=False)
    values = np.array([float(item.n_atoms) for item in items])  # any real-valued target
    return encoder, items, values


def model_for(encoder):
    return CrystalFourierTransformer(CFTConfig(radius=2.0, n_slots=encoder.n_slots, d_model=16, hidden=32))


def test_no_budget_runs_every_epoch(encoded):
    encoder, items, values = encoded
    config = TrainConfig(epochs=3, batch_size=8, patience=10, max_minutes=0)  # 0: no budget, not "stop at once"
    result = fit(model_for(encoder), items[:16], values[:16], items[16:], values[16:], config, DistributedContext("cpu"))
    assert [entry["epoch"] for entry in result["history"]] == [1, 2, 3]
    assert all(entry["steps"] == 2 for entry in result["history"])


def test_the_budget_ends_inside_an_epoch(encoded):
    encoder, items, values = encoded
    config = TrainConfig(epochs=50, batch_size=2, patience=50, max_minutes=1e-6)  # 60 microseconds: less than one step
    result = fit(model_for(encoder), items[:16], values[:16], items[16:], values[16:], config, DistributedContext("cpu"))
    (only,) = result["history"]  # validated once, then stopped
    assert only["steps"] == 1 < math.ceil(16 / 2)
    assert np.isfinite(result["best_val_mae"])
