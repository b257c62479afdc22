"""The methods an evaluation compares, each behind one protocol (scikit-learn's): made on a
:class:`~basisdb.model.prepared.Prepared` dataset, ``fit(train_rows, seed)`` on some of its rows,
then ``predict(rows)`` of any others, so that the cross-validation treats them all alike.

After a fit, ``info`` is the record it leaves beside its scores: for a neural method its
epochs, the epoch of its best validation MAE and that MAE, its training time and its training
and prediction rates (structures per second, the prediction's over every ``predict`` since the
fit); nothing for the others.

A neural fit is seeded with ``seed`` throughout: ``torch.manual_seed(seed)`` before the model is
built, its validation structures (10% of the training rows) drawn by
``np.random.default_rng(seed)``, and its batches by the training's own generator of ``seed``.
Prediction is deterministic (eval mode), so that one fit predicting two row sets gives what
two predictions of one fit give.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .baselines import CGCNN, CGCNNConfig, CompositionForest, MeanBaseline, graph_collate
from .checkpoint import load_pretrained_encoder
from .models import CFTConfig, CrystalFourierTransformer
from .prepared import Prepared
from .results import ResultError, RunConfig
from .training import (
    DistributedContext,
    Normalization,
    Regression,
    TrainConfig,
    cft_collate,
    fit,
    predict_normalized,
)

__all__ = [
    "Method",
    "MeanMethod",
    "ForestMethod",
    "NeuralMethod",
    "NeuralSettings",
    "METHODS",
    "NEURAL",
    "make_method",
    "new_network",
    "fit_network",
    "start_from",
]


@runtime_checkable
class Method(Protocol):
    """What the cross-validation asks of a method; rows index the dataset it was made on."""

    info: dict

    def fit(self, train_rows: np.ndarray, seed: int) -> Method: ...

    def predict(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class NeuralSettings:
    """How the neural methods are built and trained: the settings of a run (:meth:`of`) that
    the models need, with the pretrained encoder read and the device chosen."""

    train: TrainConfig
    cft: CFTConfig
    pretrained: dict | None
    cgcnn: CGCNNConfig = CGCNNConfig()
    validation_fraction: float = 0.1
    device: str | None = None
    fresh_head: bool = False  # a transferred fit starts its output head afresh, not from the source's
    fine_tune_learning_rate: float | None = None  # a transferred fit's peak learning rate (None: train's)

    @classmethod
    def of(cls, config: RunConfig, pretrained: dict | None = None, device: str | None = None) -> NeuralSettings:
        """The settings of ``config``; ``pretrained``: its encoder, read
        (:func:`basisdb.model.checkpoint.read_pretrained_encoder`)."""
        transfer = config.transfer
        return cls(
            train=config.train,
            cft=config.cft,
            pretrained=pretrained,
            cgcnn=config.cgcnn,
            device=device,
            fresh_head=bool(transfer and transfer.fresh_head),
            fine_tune_learning_rate=transfer.fine_tune_learning_rate if transfer else None,
        )

    def at_seed(self, training_seed: int) -> NeuralSettings:
        """These settings with the training seed ``training_seed`` recorded (a source fit's
        cache key holds it)."""
        return replace(self, train=replace(self.train, seed=training_seed))

    def fine_tuning(self) -> NeuralSettings:
        """The settings of a fit that starts from a source fit's weights."""
        if self.fine_tune_learning_rate is None:
            return self
        return replace(self, train=replace(self.train, learning_rate=self.fine_tune_learning_rate))


class MeanMethod:
    """The training mean, for every structure."""

    def __init__(self, data: Prepared):
        self.data = data
        self.info: dict = {}

    def fit(self, train_rows: np.ndarray, seed: int) -> MeanMethod:
        self.baseline = MeanBaseline().fit(self.data.values[train_rows])
        return self

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.baseline.predict(len(rows))


class ForestMethod:
    """A random forest on Magpie composition statistics, with the five structure features
    added where ``with_structure``; as many jobs as torch has threads."""

    def __init__(self, data: Prepared, with_structure: bool = False):
        self.data = data
        self.features = np.hstack([data.composition, data.structure]) if with_structure else data.composition
        self.info: dict = {}

    def fit(self, train_rows: np.ndarray, seed: int) -> ForestMethod:
        self.forest = CompositionForest(seed=seed, n_jobs=torch.get_num_threads())
        self.forest.fit(self.features[train_rows], self.data.values[train_rows])
        return self

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.forest.predict(self.features[rows])


# the neural methods: where their inputs are kept in a Prepared dataset, and how to batch them
NEURAL: dict[str, tuple[str, Callable]] = {
    "cgcnn": ("graphs", graph_collate),
    "cft": ("items", cft_collate),
    "cft-pretrained": ("items", cft_collate),
}


def new_network(name: str, settings: NeuralSettings) -> torch.nn.Module:
    """A fresh network of the neural method ``name``, initialized from torch's generator."""
    if name == "cgcnn":
        return CGCNN(settings.cgcnn)
    model = CrystalFourierTransformer(settings.cft)
    if name == "cft-pretrained":
        load_pretrained_encoder(model, settings.pretrained)
    return model


def start_from(model: torch.nn.Module, start: dict, fresh_head: bool) -> None:
    """Load the source fit's weights ``start``; with ``fresh_head``, all but the output head's
    (both networks end in a ``head``), which keeps its fresh initialization."""
    if not fresh_head:
        model.load_state_dict(start)
        return
    model.load_state_dict({key: value for key, value in start.items() if not key.startswith("head.")}, strict=False)


def fit_network(
    model: torch.nn.Module,
    items: Sequence,
    values: np.ndarray,
    train: np.ndarray,
    settings: NeuralSettings,
    seed: int,
    collate_fn: Callable,
) -> tuple[Normalization, DistributedContext, dict]:
    """Train ``model`` in place on the rows ``train`` of ``items``, a tenth of them (drawn by
    ``seed``) validating: what restores its outputs to target units, where it ran, and the
    fit's record (without the prediction rate, which its predictions give)."""
    context = DistributedContext(settings.device)
    order = np.random.default_rng(seed).permutation(train)
    n_val = max(1, int(round(settings.validation_fraction * len(order))))
    val, fit_rows = order[:n_val], order[n_val:]
    config = TrainConfig(**{**settings.train.to_dict(), "seed": seed})
    task = Regression([items[i] for i in fit_rows], values[fit_rows], [items[i] for i in val], values[val], collate_fn)
    if isinstance(model, CrystalFourierTransformer):
        model.record_training_groups(items[i].group for i in fit_rows)
    began = time.perf_counter()
    result = fit(model, task, config, context)
    train_seconds = time.perf_counter() - began
    epochs = len(result.history)
    info = {
        "epochs": epochs,
        "best_epoch": result.best_epoch,
        "best_val_mae": result.best_val_mae,  # what a variant is chosen on; the test folds stay unseen
        "train_seconds": train_seconds,
        "train_structures_per_second": epochs * len(fit_rows) / train_seconds,
    }
    return task.normalization, context, info


class NeuralMethod:
    """A CGCNN or a CFT (from scratch, or with the pretrained encoder: ``cft-pretrained``),
    each fit from fresh weights, or from ``start`` (a state dict, :func:`start_from`) where the
    method is transferred from another property, then at the fine-tuning learning rate."""

    def __init__(self, name: str, data: Prepared, settings: NeuralSettings, start: dict | None = None):
        if name not in NEURAL:
            raise ResultError(f"{name!r} is not a neural method; they are {', '.join(NEURAL)}")
        self.name, self.data, self.settings, self.start = name, data, settings, start
        field, self.collate_fn = NEURAL[name]
        self.inputs = getattr(data, field)
        self.info: dict = {}

    def fit(self, train_rows: np.ndarray, seed: int) -> NeuralMethod:
        torch.manual_seed(seed)
        self.model = new_network(self.name, self.settings)
        settings = self.settings
        if self.start is not None:
            start_from(self.model, self.start, settings.fresh_head)
            settings = settings.fine_tuning()
        self.normalization, context, self._fit_info = fit_network(
            self.model, self.inputs, self.data.values, train_rows, settings, seed, self.collate_fn
        )
        self.device = context.device
        self._predicted, self._predict_seconds = 0, 0.0
        self.info = dict(self._fit_info)
        return self

    def predict(self, rows: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        normalized = predict_normalized(
            self.model, [self.inputs[i] for i in rows], self.device, collate_fn=self.collate_fn
        )
        self._predict_seconds += time.perf_counter() - began
        self._predicted += len(rows)
        self.info = {
            **self._fit_info,
            "predict_structures_per_second": self._predicted / max(self._predict_seconds, 1e-9),
        }
        return self.normalization.restore(normalized)


# every method by name, in the order of an evaluation's table
METHODS: dict[str, Callable[..., Method]] = {
    "mean": lambda data, settings, start=None: MeanMethod(data),
    "composition-rf": lambda data, settings, start=None: ForestMethod(data),
    "magpie-structure-rf": lambda data, settings, start=None: ForestMethod(data, with_structure=True),
    "cgcnn": lambda data, settings, start=None: NeuralMethod("cgcnn", data, settings, start),
    "cft": lambda data, settings, start=None: NeuralMethod("cft", data, settings, start),
    "cft-pretrained": lambda data, settings, start=None: NeuralMethod("cft-pretrained", data, settings, start),
}


def make_method(name: str, data: Prepared, settings: NeuralSettings, start: dict | None = None) -> Method:
    """The method ``name`` on ``data``; ``start``: the initial weights of a neural method
    (:func:`basisdb.model.transfer.source_weights`), which the others do not take."""
    if name not in METHODS:
        raise ResultError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    if start is not None and name not in NEURAL:
        raise ResultError(f"{name} starts from no weights: only the neural methods ({', '.join(NEURAL)}) transfer")
    return METHODS[name](data, settings, start)
