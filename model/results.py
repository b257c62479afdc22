"""What one evaluation is, and what it found: a run's configuration, every setting resolved
(:class:`RunConfig`, a TOML file: a run is a config file, not a command line over defaults that
drift), and its result, every fold and every out-of-fold prediction (:class:`EvaluationResult`,
a versioned, compressed JSON document).  One writer and one reader each.

A run lives in a folder of its own: ``config.toml`` beside ``results.json.gz``
(:func:`write_run`, :func:`read_run`).  ``basisdb evaluate --config FOLDER/config.toml``
reruns it exactly.  A run's label is computed, as its difference to today's defaults
(:meth:`RunConfig.label`), never written by hand.

Format, version 1 (``schema_version``): ``results.json.gz`` is gzip-compressed JSON with the
keys ``schema_version``, ``recipe_versions`` (:data:`RECIPE_VERSIONS`), ``config`` (the same table
as ``config.toml``), ``unit``, ``reference``, ``structures`` (``ids``, ``groups``, ``truth``,
``held_out`` and ``fold``: per structure, its test fold, -1 for a held-out structure), ``seeds``
(per training seed: ``training_seed``, ``environment``, ``seconds`` and ``methods``, per method
its ``folds``, one record per fold, its ``out_of_fold`` predictions, null where none, its
``unseen`` predictions of the held-out structures, one row per fold, and ``source_fit`` for a
transfer), ``transfer`` and ``rejected``. A reader refuses any other version.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import tempfile
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from basisdb import BasisDBError

from .baselines import CGCNNConfig
from .models import CFTConfig
from .training import TrainConfig

__all__ = [
    "SCHEMA_VERSION",
    "RECIPE_VERSIONS",
    "recipe_version",
    "ResultError",
    "Transfer",
    "RunConfig",
    "Scores",
    "FoldResult",
    "MethodResult",
    "SeedResult",
    "EvaluationResult",
    "write_run",
    "read_run",
    "read_config",
    "same_folds",
    "check_pairable",
]

SCHEMA_VERSION = 1
# The version of each method's arithmetic: bumped when the same configuration gives other numbers
# (a change of what the method computes, not of a default, which the configuration records, nor
# of the order of a sum).  Runs are paired only where the methods paired have one version.
#   cft, cft-pretrained 2: one atom per centring class of the standardized cell (commit 0e798cf);
#   every other method: 1, unchanged since the first converged runs.
RECIPE_VERSIONS = {"cft": 2, "cft-pretrained": 2}


def recipe_version(method: str) -> int:
    """The version of ``method``'s arithmetic that this code runs (:data:`RECIPE_VERSIONS`)."""
    return RECIPE_VERSIONS.get(method, 1)


CONFIG_FILE = "config.toml"
RESULTS_FILE = "results.json.gz"


class ResultError(BasisDBError, ValueError):
    """A run's configuration or result that cannot be read: unknown keys or version, or a
    missing file."""


# -- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """Each neural method is first fitted on another property (``source``, ``dataset:target``),
    and every fold's fit starts from its weights: all of them, or all but the output head's
    (``fresh_head``), at the training's learning rate or at ``fine_tune_learning_rate``."""

    source: str
    fresh_head: bool = False
    fine_tune_learning_rate: float | None = None


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one evaluation, resolved.

    Attributes:
        dataset, target: a built-in dataset and one of its targets.
        methods: the methods compared on the same folds (``basisdb.model.methods.METHODS``).
        folds, seed: the cross-validation's folds and the seed that draws them.
        training_seeds: the seeds of the models, one evaluation each on the same folds (fold
            k's fits are seeded with ``training_seed * 1000 + k``); ``train.seed`` is the first.
        holdout: the space groups kept out of training and predicted as unseen (a spec such
            as ``"cubic"`` or ``"2,14,15"``), or None.
        train_size: every method of a fold trains on the same random subset of this many of
            its training structures (a learning curve), or None (all of them).
        limit: a random subset of this many structures of the dataset (quick checks), or None.
        symprec, invariance, routing: how structures are standardized, framed and encoded
            (``routing="identity"``: the P1 basis, an ablation).
        cft, train, cgcnn: the models' and the training's settings.
        pretrained: the orbit-distance encoder the ``cft-pretrained`` method starts from.
        transfer: the property fitted first, or None.
    """

    dataset: str
    target: str
    methods: tuple[str, ...]
    folds: int = 5
    seed: int = 0
    training_seeds: tuple[int, ...] = (0,)
    holdout: str | None = None
    train_size: int | None = None
    limit: int | None = None
    symprec: float = 1e-2
    invariance: str = "e3"
    routing: str = "group"
    cft: CFTConfig = field(default_factory=CFTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cgcnn: CGCNNConfig = field(default_factory=CGCNNConfig)
    pretrained: str | None = None
    transfer: Transfer | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "training_seeds", tuple(int(s) for s in self.training_seeds))
        if not self.training_seeds or len(set(self.training_seeds)) != len(self.training_seeds):
            raise ResultError(f"training_seeds must be distinct seeds, at least one; got {list(self.training_seeds)}")
        if self.train.seed != self.training_seeds[0]:
            object.__setattr__(self, "train", replace(self.train, seed=self.training_seeds[0]))

    def at_seed(self, training_seed: int) -> RunConfig:
        """This configuration with one training seed."""
        return replace(self, training_seeds=(training_seed,))

    @property
    def protocol(self) -> str:
        """``"compute-matched"`` under a time budget (``train.max_minutes``), else ``"converged"``."""
        return "compute-matched" if self.train.max_minutes else "converged"

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain values; None is left out (TOML has no null), and ``train.seed`` too (it is
        the first training seed)."""
        document = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if dataclasses.is_dataclass(value):
                value = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
                if item.name == "train":
                    value.pop("seed")
            elif isinstance(value, tuple):
                value = list(value)
            if value is not None:
                document[item.name] = value
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any], where: str = "config") -> RunConfig:
        known = {item.name for item in fields(cls)}
        _refuse_unknown(document, known, where)
        kinds = {"cft": CFTConfig, "train": TrainConfig, "cgcnn": CGCNNConfig, "transfer": Transfer}
        values = dict(document)
        for name, kind in kinds.items():
            if name in values:
                table = values[name]
                _refuse_unknown(table, {item.name for item in fields(kind)}, f"{where} [{name}]")
                values[name] = kind(**table)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ResultError(f"{where}: {exc}") from None

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str, where: str = "config") -> RunConfig:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ResultError(f"{where} is not TOML: {exc}") from None
        return cls.from_dict(document, where)

    # -- what it is -----------------------------------------------------------------------------
    def differences(self) -> list[str]:
        """What sets this run apart from today's defaults, in words: one phrase per setting
        (``"composition statistics"``, ``"no radial bias"``, ``"hidden 256"``), in the order
        of the fields.  The folds, methods and training seed are not differences: they say
        which evaluations of a configuration these are."""
        default = RunConfig(self.dataset, self.target, self.methods, cft=CFTConfig(n_slots=self.cft.n_slots))
        said: list[str] = []
        for item in fields(self):
            name = item.name
            if name in ("dataset", "target", "methods", "folds", "seed", "training_seeds", "cft", "train", "cgcnn"):
                continue
            mine, theirs = getattr(self, name), getattr(default, name)
            if mine != theirs:
                said += _phrases(name, mine)
        # without positions there is no positional encoder, whose sizes then say nothing
        unused = {"hidden", "encoder_blocks", "lattice_branch"} if not self.cft.positional_encoding else set()
        for part in ("cft", "train", "cgcnn"):
            mine, theirs = getattr(self, part), getattr(default, part)
            for item in fields(mine):
                if item.name in ("n_slots", "seed") or getattr(mine, item.name) == getattr(theirs, item.name):
                    continue
                if part == "cft" and item.name in unused:
                    continue
                said += _phrases(item.name, getattr(mine, item.name))
        return said

    def label(self) -> str:
        """The differences to today's defaults, or ``"today's defaults"``."""
        return ", ".join(self.differences()) or "today's defaults"


# Phrases of a setting that differs from the default; the rest say "name value".
_PHRASES = {
    "holdout": lambda v: [f"groups {v} held out"],
    "train_size": lambda v: [f"{v} training structures"],
    "limit": lambda v: [f"{v} structures"],
    "routing": lambda v: [f"{v} routing"],
    "pretrained": lambda v: [f"encoder {Path(v).name}"],
    "transfer": lambda v: (
        [f"transfer from {v.source.split(':')[-1].replace('_', ' ')}"]
        + (["fresh head"] if v.fresh_head else [])
        + ([f"fine-tuned at learning rate {v.fine_tune_learning_rate:g}"] if v.fine_tune_learning_rate else [])
    ),
    "composition": lambda v: ["composition statistics" if v else "no composition statistics"],
    "max_minutes": lambda v: [f"{v:g} minutes" if v else "to convergence"],
    "learning_rate": lambda v: [f"learning rate {v:g}"],
}


def _phrases(name: str, value: Any) -> list[str]:
    if name in _PHRASES:
        return _PHRASES[name](value)
    words = name.replace("_", " ")
    if isinstance(value, bool):
        return [words if value else f"no {words}"]
    return [f"{words} {value:g}" if isinstance(value, float) else f"{words} {value}"]


def _refuse_unknown(document: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(document) - known)
    if unknown:
        raise ResultError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))} (a setting "
            "removed from the CFT is at the git tag experiments-before-the-recipe)"
        )


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    mae: float
    rmse: float
    r2: float

    @classmethod
    def of(cls, truth: np.ndarray, predicted: np.ndarray) -> Scores:
        """MAE, RMSE and the coefficient of determination R^2."""
        error = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
        spread = float(np.sum((truth - np.mean(truth)) ** 2))
        r2 = 1 - float(np.sum(error**2)) / spread if spread > 0 else float("nan")
        return cls(float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error**2))), r2)


@dataclass(frozen=True)
class FoldResult:
    """One method on one fold.

    Attributes:
        fold: 0 to folds - 1.  n_train, n_test: structures trained on (validation included)
        and tested on.  seconds: fit and prediction.  test (and unseen): scores on the fold's
        test structures (and on the held-out groups).  The neural methods also record their
        epochs, the epoch of their best validation MAE and that MAE (what a variant is chosen
        on: the test folds stay unseen), their training time, and their training and prediction rates
        (structures per second).
    """

    fold: int
    n_train: int
    n_test: int
    seconds: float
    test: Scores
    unseen: Scores | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    best_val_mae: float | None = None
    train_seconds: float | None = None
    train_structures_per_second: float | None = None
    predict_structures_per_second: float | None = None


@dataclass(frozen=True, eq=False)
class MethodResult:
    """One method over every fold.

    Attributes:
        folds: one :class:`FoldResult` per fold.
        out_of_fold: (n,) float64 prediction of each structure by the fold that tested it;
            NaN for a held-out structure.
        unseen: (folds, n_held_out) float64 predictions of the held-out structures by each
            fold's model (empty without held-out groups).
        source_fit: the transfer's source fit (epochs, seconds, ...), or None.
    """

    folds: tuple[FoldResult, ...]
    out_of_fold: np.ndarray
    unseen: np.ndarray
    source_fit: dict | None = None

    def fold_maes(self, part: str = "test") -> np.ndarray:
        return np.array([getattr(fold, part).mae for fold in self.folds])

    @property
    def validation_mae(self) -> float | None:
        """The mean over folds of the best validation MAE (neural methods), else None."""
        values = [fold.best_val_mae for fold in self.folds]
        return None if any(v is None for v in values) else float(np.mean(values))


@dataclass(frozen=True, eq=False)
class SeedResult:
    """Every method at one training seed.

    Attributes:
        training_seed: the seed.
        methods: per method, its :class:`MethodResult`.
        environment: the machine, the threads and the versions the evaluation used.
        seconds: preparation of each representation, and the evaluation.
    """

    training_seed: int
    methods: dict[str, MethodResult]
    environment: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Everything one run found: its configuration evaluated at each of its training seeds,
    on the same folds.

    Attributes:
        config: the run.
        unit, reference: the target's unit and the dataset's source.
        ids: (n,) material ids; groups: (n,) int64 space groups; truth: (n,) float64 targets;
            held_out: (n,) bool, in a held-out group; fold: (n,) int64 the test fold of each
            structure, -1 for a held-out one: which materials each fold tests.
        seeds: one :class:`SeedResult` per training seed, in the configuration's order.
        transfer: what the transfer's source was left without, or None.
        rejected: (id, reason) of each structure the dataset could not use.
        recipe_versions: per method, the version of its arithmetic that ran
            (:data:`RECIPE_VERSIONS`); empty: today's, filled in on creation.
    """

    config: RunConfig
    unit: str
    reference: str
    ids: tuple[str, ...]
    groups: np.ndarray
    truth: np.ndarray
    held_out: np.ndarray
    fold: np.ndarray
    seeds: tuple[SeedResult, ...]
    transfer: dict | None = None
    rejected: tuple[tuple[str, str], ...] = ()
    recipe_versions: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        versions = {name: recipe_version(name) for name in self.config.methods}
        versions.update(self.recipe_versions)
        object.__setattr__(self, "recipe_versions", versions)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.seeds[0].methods)

    def of(self, method: str) -> list[MethodResult]:
        """``method`` at every training seed."""
        return [seed.methods[method] for seed in self.seeds]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "recipe_versions": self.recipe_versions,
            "config": self.config.to_dict(),
            "unit": self.unit,
            "reference": self.reference,
            "structures": {
                "ids": list(self.ids),
                "groups": self.groups.tolist(),
                "truth": self.truth.tolist(),
                "held_out": self.held_out.tolist(),
                "fold": self.fold.tolist(),
            },
            "seeds": [
                {
                    "training_seed": seed.training_seed,
                    "methods": {name: _method_dict(result) for name, result in seed.methods.items()},
                    "environment": seed.environment,
                    "seconds": seed.seconds,
                }
                for seed in self.seeds
            ],
            "transfer": self.transfer,
            "rejected": [list(pair) for pair in self.rejected],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any], where: str = "result") -> EvaluationResult:
        version = document.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultError(
                f"{where} has schema version {version!r}; this basisdb reads version {SCHEMA_VERSION} only"
            )
        structures = document["structures"]
        seeds = tuple(
            SeedResult(
                entry["training_seed"],
                {name: _method_of(method) for name, method in entry["methods"].items()},
                entry.get("environment", {}),
                entry.get("seconds", {}),
            )
            for entry in document["seeds"]
        )
        return cls(
            config=RunConfig.from_dict(document["config"], f"{where} config"),
            unit=document["unit"],
            reference=document["reference"],
            ids=tuple(structures["ids"]),
            groups=np.asarray(structures["groups"], dtype=np.int64),
            truth=np.asarray(structures["truth"], dtype=np.float64),
            held_out=np.asarray(structures["held_out"], dtype=bool),
            fold=np.asarray(structures["fold"], dtype=np.int64),
            seeds=seeds,
            transfer=document.get("transfer"),
            rejected=tuple(tuple(pair) for pair in document.get("rejected", ())),
            recipe_versions={name: int(v) for name, v in document["recipe_versions"].items()},
        )


def _method_dict(result: MethodResult) -> dict[str, Any]:
    return {
        "folds": [_fold_dict(fold) for fold in result.folds],
        "out_of_fold": [None if np.isnan(v) else float(v) for v in result.out_of_fold],
        "unseen": result.unseen.tolist(),
        "source_fit": result.source_fit,
    }


def _fold_dict(fold: FoldResult) -> dict[str, Any]:
    document = {k: v for k, v in dataclasses.asdict(fold).items() if v is not None}
    return document


def _method_of(entry: dict[str, Any]) -> MethodResult:
    folds = []
    for record in entry["folds"]:
        record = dict(record)
        record["test"] = Scores(**record["test"])
        if record.get("unseen") is not None:
            record["unseen"] = Scores(**record["unseen"])
        folds.append(FoldResult(**record))
    out_of_fold = np.array([np.nan if v is None else v for v in entry["out_of_fold"]], dtype=np.float64)
    unseen = np.asarray(entry.get("unseen") or [], dtype=np.float64)
    return MethodResult(tuple(folds), out_of_fold, unseen, entry.get("source_fit"))


def same_folds(a: EvaluationResult, b: EvaluationResult) -> bool:
    """Whether two results test the same materials in each fold (and hold out the same ones)."""
    return a.ids == b.ids and np.array_equal(a.fold, b.fold)


def check_pairable(a: EvaluationResult, method_a: str, b: EvaluationResult, method_b: str, names=("a", "b")) -> None:
    """Whether ``method_a`` of ``a`` and ``method_b`` of ``b`` may be paired fold by fold, else
    :class:`ResultError`: their folds must test the same materials, and their arithmetic be
    comparable (:data:`RECIPE_VERSIONS`): one version of one method (an ablation against its
    reference), or today's version of each of two methods."""
    if not same_folds(a, b):
        raise ResultError(f"{names[0]} and {names[1]} do not test the same materials in each fold: not paired")
    version_a, version_b = a.recipe_versions[method_a], b.recipe_versions[method_b]
    if method_a == method_b and version_a != version_b:
        raise ResultError(
            f"{method_a} of {names[0]} (recipe version {version_a}) and of {names[1]} (recipe version {version_b}) "
            "ran different arithmetic: not paired"
        )
    if method_a != method_b and (version_a != recipe_version(method_a) or version_b != recipe_version(method_b)):
        raise ResultError(
            f"{method_a} of {names[0]} (recipe version {version_a}) and {method_b} of {names[1]} (recipe version "
            f"{version_b}): two methods are paired only at today's versions ({recipe_version(method_a)}, "
            f"{recipe_version(method_b)})"
        )


# -- files -------------------------------------------------------------------------------------


def write_run(result: EvaluationResult, folder: str | os.PathLike) -> Path:
    """``config.toml`` and ``results.json.gz`` in ``folder``, each written to a temporary file
    and renamed into place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_dict(), allow_nan=False, separators=(",", ":")).encode()
    _replace(folder / RESULTS_FILE, gzip.compress(text, compresslevel=9, mtime=0))
    _replace(folder / CONFIG_FILE, result.config.to_toml().encode())
    return folder


def _replace(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_run(folder: str | os.PathLike) -> EvaluationResult:
    """The result in ``folder`` (its ``results.json.gz``)."""
    path = Path(folder) / RESULTS_FILE
    try:
        document = json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError:
        raise ResultError(f"{path} is missing: no result in {folder}") from None
    except (OSError, ValueError) as exc:
        raise ResultError(f"{path} cannot be read: {exc}") from None
    return EvaluationResult.from_dict(document, str(path))


def read_config(path: str | os.PathLike) -> RunConfig:
    """A run's configuration, from its ``config.toml`` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ResultError(f"{path} is missing") from None
    return RunConfig.from_toml(text, str(path))
