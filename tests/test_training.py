"""The training engine's two protocols (time budget, convergence), on a real CFT and real crystals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from basisdb import BasisStore
from basisdb.model.data import StructureFeaturizer
from basisdb.model.models import CFTConfig, CrystalFourierTransformer
from basisdb.model.training import (
    DistributedContext,
    Normalization,
    PlateauSchedule,
    Regression,
    TrainConfig,
    cft_collate,
    fit,
)


@pytest.fixture(scope="module")
def encoded(small_store, real_crystals):
    with BasisStore.open(small_store) as store:
        featurizer = StructureFeaturizer(store, 2.0)
        items, _ = featurizer.encode_many([(cell.label, cell) for cell in real_crystals[:24]], progress=False)
    values = np.array([float(item.n_atoms) for item in items])  # any real-valued target
    return featurizer, items, values


def model_for(featurizer):
    return CrystalFourierTransformer(CFTConfig(radius=2.0, n_slots=featurizer.n_slots, d_model=16, hidden=32))


def regression(items, targets):
    """The first 16 items train, the rest validate."""
    return Regression(items[:16], targets[:16], items[16:], targets[16:])


def test_no_budget_runs_every_epoch(encoded):
    featurizer, items, values = encoded
    config = TrainConfig(epochs=3, batch_size=8, patience=10, max_minutes=0)  # 0: no budget, not "stop at once"
    result = fit(model_for(featurizer), regression(items, values), config, DistributedContext("cpu"))
    assert [entry["epoch"] for entry in result.history] == [1, 2, 3]
    assert all(entry["steps"] == 2 for entry in result.history)
    assert (result.stopped, result.steps) == ("epochs", 6)


def test_the_budget_ends_inside_an_epoch(encoded):
    featurizer, items, values = encoded
    config = TrainConfig(epochs=50, batch_size=2, patience=50, max_minutes=1e-6)  # 60 microseconds: less than one step
    result = fit(model_for(featurizer), regression(items, values), config, DistributedContext("cpu"))
    (only,) = result.history  # validated once, then stopped
    assert only["steps"] == 1 < math.ceil(16 / 2)
    assert result.stopped == "budget" and np.isfinite(result.best_val_mae)


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
    for improved, expected in (
        (True, 1.0),
        (False, 1.0),
        (False, 0.5),
        (True, 0.5),
        (False, 0.5),
        (False, 0.25),
        (False, 0.25),
        (False, 0.125),
    ):
        schedule.epoch_end(improved)
        optimizer.step()
        schedule.step()
        assert optimizer.param_groups[0]["lr"] == expected


def test_without_a_budget_training_stops_on_its_patience_with_a_falling_rate(encoded):
    """The converged protocol: a target the model cannot learn (noise) stops improving early;
    the rate halves every patience // 3 stale epochs and training stops at the patience."""
    featurizer, items, _ = encoded
    noise = np.random.default_rng(0).normal(size=len(items))
    config = TrainConfig(epochs=200, batch_size=8, patience=6, max_minutes=None)
    result = fit(model_for(featurizer), regression(items, noise), config, DistributedContext("cpu"))
    history = result.history
    assert len(history) == result.best_epoch + 6 < 200 and result.stopped == "patience"
    rates = [entry["learning_rate"] for entry in history]
    assert rates[-1] < rates[result.best_epoch - 1] and min(rates) < config.learning_rate / 2 - 1e-12


def test_regression_learns_and_validates_with_one_normalization(encoded):
    """The normalization a checkpoint saves is the task's: the loss is taken on targets
    normalized with it, and validation maps outputs back with it."""
    featurizer, items, values = encoded
    task = regression(items, values)
    assert task.normalization == Normalization(float(np.mean(values[:16])), float(np.std(values[:16])))
    assert Normalization.of(np.full(4, 3.0)) == Normalization(3.0, 1.0)  # constant targets: no division by 0
    model = model_for(featurizer)
    shift = Regression(items[:16], values[:16] + 100.0, items[16:], values[16:] + 100.0)
    assert shift.normalization.mean == pytest.approx(task.normalization.mean + 100.0)
    assert shift.validate(model, torch.device("cpu")) == pytest.approx(
        task.validate(model, torch.device("cpu")), rel=1e-6
    )


def test_device_errors_name_the_device_and_the_available_ones():
    from basisdb.model.training import DeviceError, resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    missing = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(DeviceError, match=rf"device '{missing}' is not available.*available: cpu"):
        resolve_device(missing)
    with pytest.raises(DeviceError, match="unknown device 'gpu'; available: cpu"):
        resolve_device("gpu")


def test_a_regression_minimizes_the_smooth_l1_loss(encoded):
    """Against the loss written out by hand, on the normalized targets of one batch's sequences."""
    featurizer, items, values = encoded
    model = model_for(featurizer).eval()  # no dropout: the same outputs twice
    task = regression(items, values)
    batch = np.arange(8)
    with torch.no_grad():
        got = task.loss(model, batch, np.random.default_rng(0), torch.device("cpu")).item()
        inputs = cft_collate([items[i] for i in batch], True, np.random.default_rng(0))  # the same frames drawn
        error = (model(inputs) - torch.as_tensor(task.normalization.normalize(values[batch]))[inputs.owner]).double()
    magnitude = error.abs()
    expected = torch.where(magnitude < 1, 0.5 * error**2, magnitude - 0.5)
    assert got == pytest.approx(expected.mean().item(), rel=1e-5)
