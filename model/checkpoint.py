"""Checkpoints: config, weights, target normalization and the identity of the store.

A checkpoint is a directory holding ``model.pt`` (and ``metrics.json`` when training wrote
one).  Loading it against a store that cannot reproduce its inputs is an error, and so is
loading one that turned on an experimental switch removed since (:data:`REMOVED_SWITCHES`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from basisdb import INVARIANCES, SCHEMA_VERSION, BasisStore, Cell, SymmetryToleranceWarning

from .data import EncodedStructure, StructureFeaturizer, as_cell, collate
from .datasets import DATASETS
from .errors import CheckpointError
from .models import CFTConfig, CrystalFourierTransformer
from .training import frame_averaged, predict_normalized, resolve_device

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "read_checkpoint",
    "check_store",
    "read_pretrained_encoder",
    "load_pretrained_encoder",
    "load_checkpoint",
    "Predictor",
    "Prediction",
    "PREDICT_BATCH_SIZE",
    "target_of",
]

ENCODER_ARCHITECTURE = ("radius", "n_slots", "d_model", "hidden", "encoder_blocks")

PREDICT_BATCH_SIZE = 32  # structures per forward pass (all their frames together)
POSITIONAL_FEATURES = ("precomputed", "layer")  # numpy rows, batched; or the torch layer from positions

FORMAT = "basisdb-cft-checkpoint"
VERSION = 1

# Experimental switches removed after the git tag experiments-before-the-recipe, each with the
# value that left it off; checkpoints from before record them in "config" or "train_config".
REMOVED_SWITCHES = {
    "frame_average": "predictions",
    "frame_pairs": False,
    "pair_filter": False,
    "cell_statistics": False,
    "interaction_gates": False,
    "ema_decay": 0.0,
    "loss": "smooth_l1",
    "frames": "one",
}


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    kind: str,
    module: torch.nn.Module,
    config: CFTConfig,
    store: BasisStore,
    **extra: Any,
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "store": {**store.identity, "path": str(store.path)},
        **extra,
    }
    temporary = directory / ".model.pt.partial"
    torch.save(payload, temporary)
    os.replace(temporary, directory / "model.pt")  # a crash mid-save keeps the last checkpoint
    return directory / "model.pt"


def read_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    path = Path(path)
    file = path / "model.pt" if path.is_dir() else path
    if not file.is_file():
        what = "it has no model.pt" if path.is_dir() else "it does not exist"
        raise CheckpointError(f"no checkpoint at {path}: {what} (expected a directory with model.pt)")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{file} is not a readable checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a CFT checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{file}: checkpoint version {payload.get('version')} is not supported (this version reads {VERSION})"
        )
    if kind is not None and payload["kind"] != kind:
        raise CheckpointError(f"{file} holds a {payload['kind']!r} checkpoint, expected {kind!r}")
    for part in ("config", "train_config"):
        if part in payload:
            payload[part] = _without_removed_switches(payload[part], str(file))
    return payload


def _without_removed_switches(saved: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A checkpoint's ``saved`` config without the keys of :data:`REMOVED_SWITCHES`, which a
    checkpoint from before their removal holds, switched off.  One that switched one on is
    refused (:class:`CheckpointError`): this version can neither build nor reproduce that model."""
    for key, off in REMOVED_SWITCHES.items():
        if key in saved and saved[key] != off:
            raise CheckpointError(
                f"{where} was trained with {key}={saved[key]!r}, a switch removed since (this version always "
                f"runs {key}={off!r}); load it with basisdb at git tag experiments-before-the-recipe"
            )
    return {key: value for key, value in saved.items() if key not in REMOVED_SWITCHES}


def check_store(payload: dict[str, Any], store: BasisStore, where: str) -> None:
    """The store must reproduce the checkpoint's inputs: same schema, the model's radius."""
    recorded = payload["store"]
    radius = payload["config"]["radius"]
    if recorded["schema_version"] != SCHEMA_VERSION:
        raise CheckpointError(
            f"{where} was trained on a schema-{recorded['schema_version']} store; "
            f"{store.path} is schema {SCHEMA_VERSION}"
        )
    if float(radius) not in store.radii:
        raise CheckpointError(
            f"{where} needs radius {radius}, which {store.path} lacks (radii {list(store.radii)}); "
            f"use the store it was trained with ({recorded['path']}, fingerprint {recorded['fingerprint'][:16]})"
        )
    if recorded["fingerprint"] != store.fingerprint:
        warnings.warn(
            f"{where} was trained with store {recorded['fingerprint'][:16]}, this is {store.fingerprint[:16]}; "
            f"bases are deterministic, so this is fine if both hold radius {radius}",
            stacklevel=3,
        )


def read_pretrained_encoder(
    path: str | os.PathLike, store: BasisStore, config: CFTConfig
) -> tuple[dict[str, Any], CFTConfig]:
    """An orbit-distance pretrained encoder checked against the store, and ``config`` with
    the encoder's architecture (widths, blocks) taken from it."""
    payload = read_checkpoint(path, kind="encoder")
    check_store(payload, store, str(path))
    if float(payload["config"]["radius"]) != config.radius:
        raise CheckpointError(
            f"{path} was pretrained at radius {payload['config']['radius']}, not {config.radius}: "
            f"pass --radius {payload['config']['radius']}"
        )
    architecture = {key: payload["config"][key] for key in ENCODER_ARCHITECTURE}
    return payload, CFTConfig(**{**config.to_dict(), **architecture})


def load_pretrained_encoder(model: CrystalFourierTransformer, payload: dict[str, Any]) -> list[str]:
    """Copy pretrained encoder weights into ``model``; returns the names of those it has no
    place for (the group embedding, for a model built without one)."""
    own = model.encoder.state_dict()
    unused = sorted(set(payload["state_dict"]) - set(own))
    missing = sorted(set(own) - set(payload["state_dict"]))
    if missing:
        raise CheckpointError(f"the pretrained encoder lacks {missing}: it was built with another architecture")
    model.encoder.load_state_dict({k: v for k, v in payload["state_dict"].items() if k in own})
    return unused


def load_checkpoint(
    path: str | os.PathLike,
    store: BasisStore | str | os.PathLike | None = None,
    device: str | None = None,
    *,
    symprec: float | None = None,
    invariance: str | None = None,
    positional_features: str = "precomputed",
) -> Predictor:
    """A trained CFT, ready to predict.  ``store`` defaults to the one recorded in the
    checkpoint if it still exists, else to the default store.  ``symprec`` (spglib's
    tolerance, Angstrom) and ``invariance`` (``"e3"`` or ``"proper"``) default to the
    values the model was trained with.  ``positional_features="layer"`` computes the
    positional features with the torch layer from each frame's positions, one structure at a
    time, instead of numpy's encoding of the distinct rows, batched (the same predictions
    to 1e-6; see BENCHMARKS.md for the speed of each)."""
    payload = read_checkpoint(path, kind="cft")
    if not isinstance(store, BasisStore):
        recorded = Path(payload["store"]["path"])
        store = BasisStore.open(store if store is not None else (recorded if recorded.is_file() else None))
    check_store(payload, store, str(path))
    # a checkpoint from before the environment term has no such field and no such weights
    config = CFTConfig(**{"environment": False, **payload["config"]})
    model = CrystalFourierTransformer(config)
    model.load_state_dict(payload["state_dict"])
    invariance = invariance or payload.get("invariance", "e3")  # checkpoints before frames had none
    if invariance not in INVARIANCES:
        raise CheckpointError(f"invariance must be one of {INVARIANCES}, got {invariance!r}")
    symprec = float(payload["symprec"] if symprec is None else symprec)
    if not (np.isfinite(symprec) and symprec > 0):
        raise CheckpointError(f"symprec must be a positive number (Angstrom), got {symprec!r}")
    featurizer = StructureFeaturizer(store, config.radius, symprec, invariance)
    target, unit = target_of(payload)
    return Predictor(
        model,
        featurizer,
        payload["target_mean"],
        payload["target_std"],
        device,
        target=target,
        unit=unit,
        positional_features=positional_features,
    )


def target_of(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (target, unit) a checkpoint predicts: recorded ones, else those of the built-in
    dataset it was trained on (``data`` is ``"<dataset>:<target>"``); None where unknown
    (a ``--data`` folder's values have no name or unit)."""
    target, unit = payload.get("target"), payload.get("unit")
    name, _, dataset_target = str(payload.get("data", "")).partition(":")
    spec = DATASETS.get(name)
    if target is None and spec is not None and dataset_target in spec.targets:
        target, unit = dataset_target, spec.targets[dataset_target].unit
    return target, unit


@dataclass(frozen=True)
class Prediction:
    """One structure's prediction and the symmetry it was made with.

    Attributes:
        label: the structure's name; value: the prediction (target units).
        group: ITA number detected at the predictor's symprec; hall_number: its setting.
        looser_group: the larger group found at ten times symprec, or None.
        n_frames: frames averaged (:func:`basisdb.crystal_frames`).
        positions: whether the prediction used the positional encoding; False for a group the
            model was not trained on when it was trained with ``position_dropout``
            (:meth:`~basisdb.model.models.CrystalFourierTransformer.predicts_with_positions`).
    """

    label: str
    value: float
    group: int
    hall_number: int
    looser_group: int | None
    n_frames: int
    positions: bool


class Predictor:
    """Predictions and per-atom encodings of structures, averaged over the frames of each
    crystal.

    A structure is a pymatgen ``Structure``, an ASE ``Atoms``, a basisdb ``Cell`` or the path
    (``str`` or ``os.PathLike``) of a structure file, CIF or any format pymatgen or ASE reads
    (:func:`basisdb.read_structure_file`).  :meth:`predict` and :meth:`predictions` take one
    structure (and answer for it) or a sequence of them (and answer with one result each).

    Attributes:
        target, unit: what the model predicts, where the checkpoint knows it
            (:func:`target_of`), else None.
    """

    def __init__(
        self,
        model: CrystalFourierTransformer,
        featurizer: StructureFeaturizer,
        target_mean: float,
        target_std: float,
        device: str | None = None,
        *,
        target: str | None = None,
        unit: str | None = None,
        positional_features: str = "precomputed",
    ):
        if positional_features not in POSITIONAL_FEATURES:
            raise CheckpointError(
                f"positional_features must be one of {POSITIONAL_FEATURES}, got {positional_features!r}"
            )
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.featurizer = featurizer
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.target = target
        self.unit = unit
        self.positional_features = positional_features
        self._layers: dict[int, torch.nn.Module] = {}

    def predict_encoded(self, items, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
        """Predictions for already encoded structures, averaged over their frames."""
        return predict_normalized(self.model, items, self.device, batch_size) * self.target_std + self.target_mean

    def value_and_gradient(self, structure) -> tuple[float, np.ndarray]:
        """The prediction for one structure and its gradient with respect to the input atoms'
        Cartesian positions: (N, 3) float64, target unit per Angstrom, in the input's atom
        order and Cartesian frame.

        It is computed through :mod:`basisdb.model.gradients` (standardization, frames, the
        positional features of :class:`~basisdb.model.invariant_features.InvariantFeatures`
        and the pair profiles, all differentiable), for the discrete choices
        (standardization, neighbours) of the positions given.  Like the prediction it is a
        property of the crystal: the same atom for atom for another cell, origin, axis
        labelling or atom order, rotated with a rotated crystal, summing to zero over the
        atoms; for a supercell, the copies of an atom share its gradient equally."""
        from .gradients import differentiable_input

        cell = as_cell(structure)
        inputs = differentiable_input(self.featurizer, self._layer, cell, self.device)
        value = self._value(inputs.batch)
        (gradient,) = torch.autograd.grad(value, inputs.cartesian)
        return float(value.detach()), gradient.cpu().numpy()

    def gradient(self, structure) -> np.ndarray:
        """(N, 3) float64: the gradient of the prediction for one structure with respect to
        its atoms' Cartesian positions (:meth:`value_and_gradient`)."""
        return self.value_and_gradient(structure)[1]

    def _value(self, batch) -> torch.Tensor:
        """The prediction (a 0-d tensor) for a batch of the frames of one structure."""
        return frame_averaged(self.model, batch, 1)[0] * self.target_std + self.target_mean

    def _layer(self, hall: int) -> torch.nn.Module:
        """The positional features of a setting as a torch layer (slots layout), on the
        model's device; one per setting met."""
        if hall not in self._layers:
            from .invariant_features import InvariantFeatures

            featurizer = self.featurizer
            layer = InvariantFeatures(featurizer.store, featurizer.radius, halls=[hall], layout="slots")
            self._layers[hall] = layer.to(self.device)
        return self._layers[hall]

    @torch.no_grad()
    def _values_from_positions(self, structures) -> np.ndarray:
        """Predictions with the positional features computed by the torch layer from each
        frame's positions (``positional_features="layer"``), one structure at a time."""
        from .gradients import differentiable_input

        return np.array(
            [
                float(self._value(differentiable_input(self.featurizer, self._layer, as_cell(s), self.device).batch))
                for s in structures
            ]
        )

    def encode(self, structures, labels: Sequence[str] | None = None) -> list[EncodedStructure]:
        """Model inputs of one structure or a sequence of them (always a list); a structure
        that cannot be used raises StructureError naming it.  Warns
        (:class:`basisdb.SymmetryToleranceWarning`) for each structure in which a ten times
        looser tolerance finds a larger group."""
        structures = [structures] if is_one_structure(structures) else list(structures)
        if labels is None:
            labels = [_default_label(s, i) for i, s in enumerate(structures)]
        elif isinstance(labels, str):
            labels = [labels]
        items = [self.featurizer.encode(s, label=label) for s, label in zip(structures, labels)]
        warn_looser_groups(items, self.featurizer.symprec)
        return items

    def predict(self, structures, batch_size: int = PREDICT_BATCH_SIZE) -> float | np.ndarray:
        """A float for one structure; an array with one value per structure for a sequence
        (see :meth:`predictions` for the groups used)."""
        values = self._predict(structures, self.encode(structures), batch_size)
        return float(values[0]) if is_one_structure(structures) else values

    def _predict(self, structures, items: list[EncodedStructure], batch_size: int) -> np.ndarray:
        if self.positional_features == "precomputed":
            return self.predict_encoded(items, batch_size)
        return self._values_from_positions([structures] if is_one_structure(structures) else list(structures))

    def predictions(
        self, structures, labels: Sequence[str] | None = None, batch_size: int = PREDICT_BATCH_SIZE
    ) -> Prediction | list[Prediction]:
        """The value and the symmetry behind it: one :class:`Prediction` for one structure,
        a list for a sequence."""
        items = self.encode(structures, labels)
        results = [
            Prediction(
                item.label,
                float(value),
                item.group,
                item.hall_number,
                item.looser_group,
                item.n_frames,
                self.model.predicts_with_positions(item.group),
            )
            for item, value in zip(items, self._predict(structures, items, batch_size))
        ]
        return results[0] if is_one_structure(structures) else results

    @torch.no_grad()
    def atom_encodings(self, structure) -> np.ndarray:
        """(n_atoms, d_model) Transformer outputs per input atom, in the input's order, of one
        structure (an object or a file's path)."""
        (item,) = self.encode([structure])
        batch = collate([item], frames="all").to(self.device)
        states = torch.einsum("f,fnd->nd", batch.weight, self.model.atom_states(batch))  # weighted over frames
        return states.cpu().numpy()[item.input_to_standardized]


def is_one_structure(value: Any) -> bool:
    """Whether ``value`` is one structure rather than a sequence of them: a path (``str`` or
    ``os.PathLike``), a basisdb Cell, a pymatgen Structure or an ASE Atoms (both of which
    iterate over their atoms), spglib's ``(lattice, positions, numbers)`` tuple, or anything
    that is not iterable."""
    if isinstance(value, (str, bytes, os.PathLike, Cell)):
        return True
    for module, name in (("pymatgen.core.structure", "IStructure"), ("ase.atoms", "Atoms")):
        kind = getattr(sys.modules.get(module), name, None)  # loaded if such an object exists
        if kind is not None and isinstance(value, kind):
            return True
    if isinstance(value, tuple) and len(value) in (3, 4) and isinstance(value[0], (list, tuple, np.ndarray)):
        try:
            if np.asarray(value[0], dtype=float).shape == (3, 3):
                return True  # spglib's cell: a sequence of structures has no 3x3 numbers first
        except (TypeError, ValueError):
            pass
    return not isinstance(value, Iterable) or isinstance(value, Mapping)


def _default_label(structure: Any, index: int) -> str:
    return Path(structure).stem if isinstance(structure, (str, os.PathLike)) else f"structure {index}"


def looser_group_note(item: EncodedStructure, symprec: float) -> str:
    """Why a structure's group is in doubt (for items whose ``looser_group`` is set)."""
    return (
        f"{item.label}: spglib finds space group {item.looser_group} at symprec {10 * symprec:g} A but "
        f"{item.group} at {symprec:g} A, and predicts with {item.group}; if the structure is noisy, "
        "pass a larger symprec"
    )


def warn_looser_groups(items: Sequence[EncodedStructure], symprec: float) -> None:
    """One :class:`basisdb.SymmetryToleranceWarning` per structure whose group grows at ten
    times ``symprec``."""
    for item in items:
        if item.looser_group is not None:
            warnings.warn(looser_group_note(item, symprec), SymmetryToleranceWarning, stacklevel=3)
