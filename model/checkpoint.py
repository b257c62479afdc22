"""Checkpoints: config, weights, target normalization and the identity of the store.

A checkpoint is a directory holding ``model.pt`` (and ``metrics.json`` when training wrote
one).  Loading it against a store that cannot reproduce its inputs is an error.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from basisdb import INVARIANCES, SCHEMA_VERSION, BasisDBError, BasisStore, SymmetryToleranceWarning

from .data import EncodedStructure, StructureFeaturizer, collate
from .models import CFTConfig, CrystalFourierTransformer
from .training import predict_normalized, resolve_device

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
]

ENCODER_ARCHITECTURE = ("radius", "n_slots", "d_model", "hidden", "encoder_blocks")

FORMAT = "basisdb-cft-checkpoint"
VERSION = 1


class CheckpointError(BasisDBError, ValueError):
    """A checkpoint that is unreadable, of another kind, or incompatible with the store."""


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
        raise CheckpointError(f"no checkpoint at {path} (expected a directory with model.pt)")
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
    return payload


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
) -> Predictor:
    """A trained CFT, ready to predict.  ``store`` defaults to the one recorded in the
    checkpoint if it still exists, else to the default store.  ``symprec`` (spglib's
    tolerance, Angstrom) and ``invariance`` (``"e3"`` or ``"proper"``) default to the
    values the model was trained with."""
    payload = read_checkpoint(path, kind="cft")
    if not isinstance(store, BasisStore):
        recorded = Path(payload["store"]["path"])
        store = BasisStore.open(store if store is not None else (recorded if recorded.is_file() else None))
    check_store(payload, store, str(path))
    config = CFTConfig(**payload["config"])
    model = CrystalFourierTransformer(config)
    model.load_state_dict(payload["state_dict"])
    invariance = invariance or payload.get("invariance", "e3")  # checkpoints before frames had none
    if invariance not in INVARIANCES:
        raise CheckpointError(f"invariance must be one of {INVARIANCES}, got {invariance!r}")
    symprec = float(payload["symprec"] if symprec is None else symprec)
    if not (np.isfinite(symprec) and symprec > 0):
        raise CheckpointError(f"symprec must be a positive number (Angstrom), got {symprec!r}")
    featurizer = StructureFeaturizer(store, config.radius, symprec, invariance)
    return Predictor(model, featurizer, payload["target_mean"], payload["target_std"], device)


@dataclass(frozen=True)
class Prediction:
    """One structure's prediction and the symmetry it was made with.

    Attributes:
        label: the structure's name; value: the prediction (target units).
        group: ITA number detected at the predictor's symprec; hall_number: its setting.
        looser_group: the larger group found at ten times symprec, or None.
        n_frames: frames averaged (:func:`basisdb.crystal_frames`).
    """

    label: str
    value: float
    group: int
    hall_number: int
    looser_group: int | None
    n_frames: int


class Predictor:
    """Predictions and per-atom encodings of structures (pymatgen, ASE, basisdb Cell, or a
    CIF path), averaged over the frames of each crystal."""

    def __init__(
        self,
        model: CrystalFourierTransformer,
        featurizer: StructureFeaturizer,
        target_mean: float,
        target_std: float,
        device: str | None = None,
    ):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.featurizer = featurizer
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)

    def predict_encoded(self, items, batch_size: int = 32) -> np.ndarray:
        """Predictions for already encoded structures, averaged over their frames."""
        return predict_normalized(self.model, items, self.device, batch_size) * self.target_std + self.target_mean

    def encode(self, structures: Sequence, labels: Sequence[str] | None = None) -> list[EncodedStructure]:
        """Model inputs of structures; a structure that cannot be used raises StructureError
        naming it.  Warns (:class:`basisdb.SymmetryToleranceWarning`) for each structure in
        which a ten times looser tolerance finds a larger group."""
        labels = labels or [f"structure {i}" for i in range(len(structures))]
        items = [self.featurizer.encode(s, label=label) for s, label in zip(structures, labels)]
        warn_looser_groups(items, self.featurizer.symprec)
        return items

    def predict(self, structures: Sequence, batch_size: int = 32) -> np.ndarray:
        """One value per structure (see :meth:`predictions` for the groups used)."""
        return self.predict_encoded(self.encode(structures), batch_size)

    def predictions(
        self, structures: Sequence, labels: Sequence[str] | None = None, batch_size: int = 32
    ) -> list[Prediction]:
        """One :class:`Prediction` per structure: the value and the symmetry behind it."""
        items = self.encode(structures, labels)
        return [
            Prediction(item.label, float(value), item.group, item.hall_number, item.looser_group, item.n_frames)
            for item, value in zip(items, self.predict_encoded(items, batch_size))
        ]

    @torch.no_grad()
    def atom_encodings(self, structure) -> np.ndarray:
        """(n_atoms, d_model) Transformer outputs per input atom, in the input's order."""
        (item,) = self.encode([structure])
        batch = collate([item], frames="all").to(self.device)
        states = torch.einsum("f,fnd->nd", batch.weight, self.model.atom_states(batch))  # weighted over frames
        return states.cpu().numpy()[item.input_to_standardized]


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
