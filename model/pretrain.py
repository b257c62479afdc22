"""``basisdb pretrain --out CKPT``: orbit-distance pretraining of the shared positional encoder.

Random lattices per crystal family and pairs of random points; the target is the exact orbit
distance (see :mod:`basisdb.model.geometry`).  The encoder learns embeddings whose Euclidean
distance equals it.  Training pairs are drawn afresh every epoch (a fixed set is learnt by
heart), held-out pairs once, on lattices of their own; the held-out pairs validate every
epoch.  Training is :func:`basisdb.model.training.fit`, as for properties, with the same
options; their defaults are pretraining's own recipe (:data:`RECIPE`: batches of 512, learning
rate 2e-3, 30 minutes), and the benchmark's pretraining (BENCHMARKS.md) adds ``--threads 1``.
``--minutes`` bounds the whole run, drawing included, and is checked at every step.
Held-out MAE, and MAE divided by the mean distance, overall and per crystal system, go to
``CKPT/metrics.json``.

``--readout`` says which function of two embeddings is taken as their orbit distance: their
Euclidean distance (``distance``, the paper's task, the default), or its square
(``squared``).  An orbit distance lives on a flat torus folded by the group, which no
Euclidean space holds with its distances kept (on a circle, a half-turn's chord is shorter
than its arc), so the first has a floor above zero whatever the encoder; the square root of
a torus's distance nearly embeds, so the second's floor is a few times lower
(``benchmarks/embedding_floor.py`` measures both; BENCHMARKS.md, "Pretraining").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from basisdb import BasisStore, command_parser, get_setting, output_path, run_command

from .checkpoint import save_checkpoint
from .cli import (
    add_model_arguments,
    add_seed_argument,
    add_training_arguments,
    cft_config_from,
    fraction,
    parse_groups,
    parse_option,
    positive,
    set_threads,
    train_config_from,
)
from .data import StructureFeaturizer, lattice_features
from .geometry import orbit_distance, random_lattice
from .modules import PositionalEncoder
from .training import DistributedContext, TrainConfig, fit

# Pretraining's recipe (BENCHMARKS.md, "Pretraining"): cheap pairs in large batches, 30 minutes.
RECIPE = TrainConfig(epochs=200, batch_size=512, learning_rate=2e-3, max_minutes=30.0)

# What two embeddings e1, e2 give as their orbit distance: |e1 - e2|, or |e1 - e2|^2.
READOUTS = ("distance", "squared")

__all__ = ["RECIPE", "READOUTS", "OrbitDistances", "make_pairs", "embedding_distance", "read_out", "main"]


def _check_readout(readout: str) -> None:
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")


def read_out(squared: torch.Tensor, readout: str) -> torch.Tensor:
    """The orbit distances that embeddings state, from their squared Euclidean distances
    ``squared`` (any shape, >= 0): their distance, or that square itself (``readout``, one
    of :data:`READOUTS`)."""
    return squared if readout == "squared" else torch.sqrt(squared + 1e-12)


def make_pairs(
    featurizer: StructureFeaturizer, groups, samples_per_group: int, lattices_per_group: int, rng
) -> dict[str, np.ndarray]:
    """Feature pairs, lattices, space groups and exact orbit distances; loops are per lattice only.

    Returns (n,) arrays, one row per pair: first, second (n, n_slots) float32 slot features
    of the two points; ita_numbers int64; lattice (n, 6) lattice features; distance the
    orbit distance in Angstrom; system the crystal system."""
    parts = {k: [] for k in ("first", "second", "ita_numbers", "lattice", "distance", "system")}
    per_lattice = max(1, samples_per_group // lattices_per_group)
    for group in groups:
        setting = get_setting(group)
        for _ in range(lattices_per_group):
            lattice = random_lattice(setting, rng)
            x1, x2 = rng.random((per_lattice, 3)), rng.random((per_lattice, 3))
            parts["first"].append(featurizer.features(setting.hall_number, x1))
            parts["second"].append(featurizer.features(setting.hall_number, x2))
            parts["distance"].append(orbit_distance(setting, lattice, x1, x2))
            parts["ita_numbers"].append(np.full(per_lattice, group))
            parts["lattice"].append(np.repeat(lattice_features(lattice)[None], per_lattice, axis=0))
            parts["system"].append(np.full(per_lattice, setting.crystal_system))
    return {k: np.concatenate(v) for k, v in parts.items()}


def embedding_distance(
    encoder: PositionalEncoder, pairs: dict[str, torch.Tensor], index, readout: str = "distance"
) -> torch.Tensor:
    """(n,) the orbit distances the embeddings of the pairs ``index`` state: their Euclidean
    distance, or its square (``readout``, one of :data:`READOUTS`)."""
    _check_readout(readout)
    ita_numbers, lattice = pairs["ita_numbers"][index], pairs["lattice"][index]
    difference = encoder(pairs["first"][index], ita_numbers, lattice) - encoder(
        pairs["second"][index], ita_numbers, lattice
    )
    return read_out((difference**2).sum(-1), readout)


class OrbitDistances:
    """Orbit-distance pretraining as a :class:`basisdb.model.training.Task`: a smooth L1 loss
    (beta 0.1 A) between the distances the embeddings state (``readout``, see
    :func:`embedding_distance`) and orbit distances, validated by the MAE on the held-out
    pairs (A).

    The held-out pairs are drawn first, on ``held_out`` of the lattices and pairs of each
    group, then the training pairs; new training pairs (lattices and points) are drawn at the
    start of every epoch after the first.  All pairs live on ``device``."""

    def __init__(
        self,
        featurizer: StructureFeaturizer,
        groups: Sequence[int],
        samples_per_group: int,
        lattices_per_group: int,
        held_out: float,
        seed: int,
        device: torch.device,
        readout: str = "distance",
    ):
        _check_readout(readout)
        self.featurizer, self.groups, self.device = featurizer, list(groups), device
        self.readout = readout
        self.rng = np.random.default_rng(seed)
        held_per_group = max(1, int(round(held_out * samples_per_group)))
        held_lattices = max(1, int(round(held_out * lattices_per_group)))
        self.train_per_group = samples_per_group - held_per_group
        self.train_lattices = max(1, lattices_per_group - held_lattices)
        self.held, self.held_systems = self._draw(held_per_group, held_lattices)  # new lattices too: never trained on
        self.pairs, _ = self._draw(self.train_per_group, self.train_lattices)
        self.n_train = len(self.pairs["distance"])
        self.epochs_begun = self.pairs_seen = self.draws = 0
        self.drawing_seconds = 0.0  # redrawing training pairs, after the first draw

    def _draw(self, samples_per_group: int, lattices_per_group: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        raw = make_pairs(self.featurizer, self.groups, samples_per_group, lattices_per_group, self.rng)
        systems = raw.pop("system")
        tensors = {
            k: torch.as_tensor(v, dtype=torch.long if k == "ita_numbers" else torch.float32, device=self.device)
            for k, v in raw.items()
        }
        return tensors, systems

    def steps_per_epoch(self, batch_size: int, context) -> int:
        return math.ceil(self.n_train / batch_size)

    def epoch_batches(self, rng: np.random.Generator, batch_size: int, context) -> list[np.ndarray]:
        self.epochs_begun += 1
        if self.epochs_begun > 1:
            drawn = time.monotonic()
            self.pairs, _ = self._draw(self.train_per_group, self.train_lattices)
            self.drawing_seconds += time.monotonic() - drawn
            self.draws += 1
        order = rng.permutation(self.n_train)
        return [order[i : i + batch_size] for i in range(0, self.n_train, batch_size)]

    def loss(
        self, encoder: torch.nn.Module, batch: np.ndarray, rng: np.random.Generator, device: torch.device
    ) -> torch.Tensor:
        index = torch.as_tensor(batch, device=device)
        self.pairs_seen += len(index)
        return nn.functional.smooth_l1_loss(
            embedding_distance(encoder, self.pairs, index, self.readout), self.pairs["distance"][index], beta=0.1
        )

    @torch.no_grad()
    def _held_out_errors(self, encoder: torch.nn.Module, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(|predicted - orbit distance|, orbit distance) of every held-out pair."""
        encoder.eval()
        index = torch.arange(len(self.held_systems), device=self.device)
        predicted = (
            torch.cat(
                [
                    embedding_distance(encoder, self.held, index[i : i + batch], self.readout)
                    for i in range(0, len(index), batch)
                ]
            )
            .cpu()
            .numpy()
        )
        truth = self.held["distance"].cpu().numpy()
        return np.abs(predicted - truth), truth

    def validate(self, encoder: torch.nn.Module, device: torch.device) -> float:
        error, _ = self._held_out_errors(encoder)
        return float(error.mean())

    def held_out_metrics(self, encoder: torch.nn.Module) -> dict:
        """MAE, mean orbit distance and their ratio on the held-out pairs, overall and per
        crystal system."""
        error, truth = self._held_out_errors(encoder)

        def summary(mask):
            return {
                "n": int(mask.sum()),
                "mae": float(error[mask].mean()),
                "mean_distance": float(truth[mask].mean()),
                "mae_over_mean_distance": float(error[mask].mean() / truth[mask].mean()),
            }

        systems = self.held_systems
        return {
            "overall": summary(np.ones_like(truth, dtype=bool)),
            "per_crystal_system": {s: summary(systems == s) for s in dict.fromkeys(systems)},
        }


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("basisdb pretrain", __doc__)
    parser.add_argument(
        "--out",
        required=True,
        type=output_path("an encoder checkpoint (a folder)"),
        help="checkpoint directory to write",
    )
    parser.add_argument(
        "--groups",
        default="1-230",
        help="space groups: ITA numbers, ranges such as '143-194', crystal systems such as 'cubic'",
    )
    parser.add_argument(
        "--samples-per-group", type=positive(), default=512, help="point pairs per group, held-out ones included"
    )
    parser.add_argument(
        "--lattices-per-group", type=positive(), default=16, help="random lattices per group, held-out ones included"
    )
    parser.add_argument(
        "--held-out", type=fraction, default=0.1, help="share of each group's pairs and lattices held out to validate"
    )
    parser.add_argument(
        "--readout",
        choices=READOUTS,
        default="distance",
        help="what two embeddings state as their orbit distance: their Euclidean distance (the paper's task) or its "
        "square, whose floor is lower: no Euclidean space holds a torus's distances (default: %(default)s)",
    )
    add_seed_argument(parser, "the pairs, the initialization and the batches")
    add_model_arguments(parser, encoder_only=True)
    add_training_arguments(parser, recipe=RECIPE)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    groups = parse_option(parser, "--groups", parse_groups, args.groups)
    context = DistributedContext(args.device)
    set_threads(args.threads)
    torch.manual_seed(args.seed)
    store = BasisStore.open(args.store)
    featurizer = StructureFeaturizer(store, args.radius)
    began = time.monotonic()  # --minutes bounds the whole run, drawing included
    task = OrbitDistances(
        featurizer,
        groups,
        args.samples_per_group,
        args.lattices_per_group,
        args.held_out,
        args.seed,
        context.device,
        args.readout,
    )
    print(
        f"{task.n_train} training pairs per epoch and {len(task.held_systems)} held-out pairs "
        f"from {len(groups)} groups in "
        f"{time.monotonic() - began:.1f} s; mean orbit distance {task.pairs['distance'].mean():.3f} A",
        file=sys.stderr,
    )
    config = cft_config_from(args, featurizer.n_slots, group_embedding=True)
    encoder = PositionalEncoder(
        config.n_slots, config.hidden, config.d_model, config.encoder_blocks, group_embedding=config.group_embedding
    )
    result = fit(encoder, task, train_config_from(args, seed=args.seed), context, started=began)
    metrics = task.held_out_metrics(encoder)
    metrics.update(
        {
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "stopped": result.stopped,
            "steps": result.steps,
            "pairs_seen": task.pairs_seen,
            "readout": args.readout,
            "draws": 1 + task.draws,
            "train_seconds": result.seconds,
            "drawing_seconds": task.drawing_seconds,
            "n_pairs_per_epoch": task.n_train,
            "n_held_out": len(task.held_systems),
            "groups": args.groups,
            "device": str(context.device),
            "torch_threads": torch.get_num_threads(),
            "config": config.to_dict(),
            "history": result.history,
        }
    )
    save_checkpoint(args.out, kind="encoder", module=encoder, config=config, store=store, metrics=metrics["overall"])
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    overall = metrics["overall"]
    print(
        f"held-out MAE {overall['mae']:.4f} A, mean orbit distance {overall['mean_distance']:.3f} A, "
        f"ratio {overall['mae_over_mean_distance']:.4f} "
        f"({len(result.history)} epochs, {result.seconds / 60:.1f} min, stopped: {result.stopped})"
    )
    for system, row in metrics["per_crystal_system"].items():
        print(
            f"  {system:<13} MAE {row['mae']:.4f} A  mean {row['mean_distance']:.3f} A  "
            f"ratio {row['mae_over_mean_distance']:.4f}  (n={row['n']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
