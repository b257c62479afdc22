"""The training engine's two protocols (time budget, convergence), on a real CFT and real crystals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from basisdb import BasisStore
from basisdb.model.data import StructureFeaturizer, collate
from basisdb.model.models import CFTConfig, CrystalFourierTransformer
from basisdb.model.training import (
    DistributedContext,
    Normalization,
    PlateauSchedule,
    Regression,
    TrainConfig,
    cft_collate,
    fit,
    predict_normalized,
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


def test_ema_validates_keeps_and_returns_the_averaged_weights(encoded):
    """With ``ema_decay`` the fit's scores are those of the moving average, recomputed here
    from every step's weights, and the model ends holding the best average."""
    featurizer, items, values = encoded
    decay, task = 0.5, regression(items, values)
    torch.manual_seed(0)
    model = model_for(featurizer)
    average = {}  # starts at the weights after the first step, as torch's AveragedModel does
    seen = []

    def track(module, epoch, score):  # runs at every better score, with the averaged weights
        seen.append((epoch, score, {k: v.detach().clone() for k, v in module.state_dict().items()}))

    def average_after_step(optimizer, args, kwargs):  # the expected average, from the raw weights after each step
        for name, tensor in model.state_dict().items():
            if name not in average or not tensor.is_floating_point():
                average[name] = tensor.detach().clone()
            else:
                average[name].mul_(decay).add_(tensor.detach(), alpha=1 - decay)

    hook = register_optimizer_step_post_hook(average_after_step)
    try:
        config = TrainConfig(epochs=3, batch_size=8, patience=10, ema_decay=decay)
        result = fit(model, task, config, DistributedContext("cpu"), on_best=track)
    finally:
        hook.remove()
    assert seen and seen[-1][0] == result.best_epoch
    best_weights = seen[-1][2]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, best_weights[name]), name
    if result.best_epoch == 3:  # the average after the last step is what was kept
        for name, tensor in model.state_dict().items():
            assert torch.allclose(tensor, average[name], atol=1e-6), name
    assert task.validate(model, torch.device("cpu")) == pytest.approx(result.best_val_mae, rel=1e-6)
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        TrainConfig(ema_decay=1.0)


@pytest.mark.parametrize("loss", ["smooth_l1", "l1"])
def test_a_regression_minimizes_the_loss_it_is_given(encoded, loss):
    """Against the loss written out by hand, on the normalized targets of one batch's sequences."""
    featurizer, items, values = encoded
    model = model_for(featurizer).eval()  # no dropout: the same outputs twice
    task = Regression(items[:16], values[:16], items[16:], values[16:], loss=loss)
    batch = np.arange(8)
    with torch.no_grad():
        got = task.loss(model, batch, np.random.default_rng(0), torch.device("cpu")).item()
        inputs = cft_collate([items[i] for i in batch], True, np.random.default_rng(0))  # the same frames drawn
        error = (model(inputs) - torch.as_tensor(task.normalization.normalize(values[batch]))[inputs.owner]).double()
    magnitude = error.abs()
    expected = magnitude if loss == "l1" else torch.where(magnitude < 1, 0.5 * error**2, magnitude - 0.5)
    assert got == pytest.approx(expected.mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"loss must be one of \('smooth_l1', 'l1'\), got 'l2'"):
        TrainConfig(loss="l2")


def test_training_on_all_frames_takes_the_loss_of_the_prediction_itself(encoded):
    """``frames="all"``: the loss of a batch is that of the frame-averaged prediction, which
    ``predict_normalized`` gives, whatever the order the batch lists its structures in."""
    featurizer, items, values = encoded
    assert max(item.n_frames for item in items[:16]) > 1  # some structure has frames to average
    model = model_for(featurizer).eval()
    task = Regression(items[:16], values[:16], items[16:], values[16:], loss="l1", frames="all")
    batch = np.array([5, 0, 11, 3, 14, 8, 1, 9])
    with torch.no_grad():
        got = task.loss(model, batch, np.random.default_rng(0), torch.device("cpu")).item()
    predicted = predict_normalized(model, [items[i] for i in batch], "cpu")
    expected = np.abs(predicted - task.normalization.normalize(values[batch])).mean()
    assert got == pytest.approx(expected, rel=1e-5)
    one = Regression(items[:16], values[:16], items[16:], values[16:], loss="l1")  # one random frame: another loss
    with torch.no_grad():
        assert one.loss(model, batch, np.random.default_rng(0), torch.device("cpu")).item() != pytest.approx(got)
    with pytest.raises(ValueError, match=r"frames must be one of \('one', 'all'\), got 'some'"):
        TrainConfig(frames="some")
    with pytest.raises(ValueError, match=r"frames must be one of \('one', 'all'\), got 'some'"):
        Regression(items[:16], values[:16], items[16:], values[16:], frames="some")


def test_a_model_averaging_frame_encodings_runs_its_transformer_once_per_structure(encoded):
    """``frame_average="encodings"``: the Transformer's input for a structure is the weighted
    average over its frames of the tokens the recipe's model gives each frame (the same
    weights), its states are shared by the frames, and it trains on every frame.  A structure
    of one distinct frame is predicted as the recipe predicts it; one of several is not."""
    featurizer, items, values = encoded
    torch.manual_seed(0)
    recipe = model_for(featurizer).eval()
    config = CFTConfig(radius=2.0, n_slots=featurizer.n_slots, d_model=16, hidden=32, frame_average="encodings")
    averaging = CrystalFourierTransformer(config).eval()
    averaging.load_state_dict(recipe.state_dict())
    seen = {}
    for name, model in (("recipe", recipe), ("averaging", averaging)):
        model.transformer.register_forward_pre_hook(lambda module, args, name=name: seen.__setitem__(name, args[0]))
    batch = collate(items[:16], frames="all")
    with torch.no_grad():
        states = averaging.atom_states(batch)
        recipe.atom_states(batch)
    weight = batch.weight.double()
    expected = torch.zeros(16, *seen["recipe"].shape[1:], dtype=torch.float64)
    expected.index_add_(0, batch.owner, seen["recipe"].double() * weight[:, None, None])
    expected /= torch.zeros(16, dtype=torch.float64).index_add_(0, batch.owner, weight)[:, None, None]
    assert seen["averaging"].shape[0] == 16 < seen["recipe"].shape[0]  # once per structure, not per frame
    assert torch.allclose(seen["averaging"].double(), expected, atol=1e-5)
    assert torch.equal(states, states[batch.first_sequences()][batch.owner])  # the frames share their states

    single = collate(items, frames="random", rng=np.random.default_rng(0))  # one frame each: nothing to average
    with torch.no_grad():
        assert torch.allclose(averaging(single), recipe(single), rtol=1e-5, atol=1e-6)
    several = np.array([len(item.distinct_frames[1]) > 1 for item in items])
    by_recipe, by_averaging = predict_normalized(recipe, items, "cpu"), predict_normalized(averaging, items, "cpu")
    assert several.all() and not np.allclose(by_averaging, by_recipe, rtol=1e-3)

    assert (averaging.training_frames("one"), recipe.training_frames("one")) == ("all", "one")
    task = Regression(items[:16], values[:16], items[16:], values[16:], frames=averaging.training_frames("one"))
    result = fit(averaging, task, TrainConfig(epochs=2, batch_size=8), DistributedContext("cpu"))
    assert result.steps == 4 and np.isfinite(result.best_val_mae)
    with pytest.raises(ValueError, match=r"frame_average must be one of \('predictions', 'encodings'\), got 'tokens'"):
        CFTConfig(frame_average="tokens")
    with pytest.raises(ValueError, match="frame_pairs relate the frames' encodings that are averaged"):
        CFTConfig(frame_pairs=True)
