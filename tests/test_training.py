"""The fit loop's two protocols (time budget, convergence), on a real CFT and real crystals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from basisdb import BasisStore
from model.data import StructureEncoder
from model.models import CFTConfig, CrystalFourierTransformer
from model.training import DistributedContext, PlateauSchedule, TrainConfig, fit


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


def test_plateau_schedule_warms_up_then_halves_after_each_stale_stretch():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    schedule = PlateauSchedule(optimizer, warmup=4, wait=2)
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == [0.25, 0.5, 0.75, 1.0]
    for improved, expected in ((True, 1.0), (False, 1.0), (False, 0.5), (True, 0.5), (False, 0.5), (False, 0.25), (False, 0.25), (False, 0.125)):
        schedule.epoch_end(improved)
        optimizer.step()
        schedule.step()
        assert optimizer.param_groups[0]["lr"] == expected


def test_without_a_budget_training_stops_on_its_patience_with_a_falling_rate(encoded):
    """The converged protocol: a target the model cannot learn (noise) stops improving early;
    the rate halves every patience // 3 stale epochs and training stops at the patience."""
    encoder, items, _ = encoded
    noise = np.random.default_rng(0).normal(size=len(items))
    config = TrainConfig(epochs=200, batch_size=8, patience=6, max_minutes=None)
    result = fit(model_for(encoder), items[:16], noise[:16], items[16:], noise[16:], config, DistributedContext("cpu"))
    history = result["history"]
    assert len(history) == result["best_epoch"] + 6 < 200
    rates = [entry["learning_rate"] for entry in history]
    assert rates[-1] < rates[result["best_epoch"] - 1] and min(rates) < config.learning_rate / 2 - 1e-12
