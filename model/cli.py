"""What the model's commands share: their option groups, with one set of defaults, and the
parsing of option values.

``basisdb train``, ``basisdb pretrain`` and ``basisdb evaluate`` add the same model options
(:func:`add_model_arguments`) and training options (:func:`add_training_arguments`).  Their
defaults are :class:`~basisdb.model.models.CFTConfig` and :class:`~basisdb.model.training.TrainConfig`, which
are the benchmark recipe (BENCHMARKS.md); pretraining, a task of its own, passes its own
recipe (:data:`basisdb.model.pretrain.RECIPE`) to the same option group.  Every command starts
through :func:`basisdb.cli.run_command`, so a bad value ends as ``error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import torch

from basisdb import DEFAULT_SYMPREC, INVARIANCES, crystal_system, parse_number_ranges

from .models import CFTConfig
from .training import TrainConfig

__all__ = [
    "CRYSTAL_SYSTEMS",
    "STDOUT",
    "parse_groups",
    "positive",
    "fraction",
    "rate",
    "option_type",
    "parse_option",
    "add_model_arguments",
    "add_environment_argument",
    "add_structure_arguments",
    "add_training_arguments",
    "add_seed_argument",
    "add_device_argument",
    "cft_config_from",
    "train_config_from",
    "set_threads",
]

# ``--out -``: a command that writes a table prints it on standard output instead, and
# every message on standard error.
STDOUT = Path("-")

CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")


def parse_groups(spec: str) -> list[int]:
    """Space-group (ITA) numbers from ``"2,14,15"``, ``"143-194"``, crystal-system names
    (``"cubic"``, ``"monoclinic,triclinic"``) or a mix; ValueError names what is wrong.

    >>> parse_groups("Triclinic, 15")
    [1, 2, 15]
    """
    groups: set[int] = set()
    for part in (p.strip().lower() for p in spec.split(",")):
        if part in CRYSTAL_SYSTEMS:
            groups.update(g for g in range(1, 231) if crystal_system(g) == part)
            continue
        try:
            groups.update(parse_number_ranges(part, upper=230))
        except ValueError as exc:
            raise ValueError(
                f"{exc}; use ITA numbers 1-230, ranges such as '143-194', "
                f"or a crystal system ({', '.join(CRYSTAL_SYSTEMS)})"
            ) from None
    if not groups:
        raise ValueError(f"space groups are 1-230; {spec!r} gives none")
    return sorted(groups)


def option_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """``parse`` as an argparse type: its ValueError message becomes the usage error."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def positive(kind: type = int, *, zero: bool = False) -> Callable[[str], object]:
    """An argparse type: a finite number of ``kind`` above 0 (at least 0 with ``zero``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not math.isfinite(value) or not (value >= 0 if zero else value > 0):
            raise ValueError(f"expected a number {'>= 0' if zero else '> 0'}, got {text!r}")
        return value

    return option_type(parse)


def _between(low: float, high: float, *, low_included: bool = False) -> Callable[[str], object]:
    """An argparse type: a number in (low, high), or [low, high) with ``low_included``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not ((low <= value if low_included else low < value) and value < high):
            raise ValueError(
                f"expected a number {'at least' if low_included else 'above'} {low:g} and below {high:g}, got {text!r}"
            )
        return value

    return option_type(parse)


fraction = _between(0, 1)
rate = _between(0, 1, low_included=True)  # a dropout probability


def parse_option(parser: argparse.ArgumentParser, option: str, parse: Callable[[str], object], text: str):
    """``parse(text)`` for a value that is kept as given too (a --groups spec is recorded as
    written); its ValueError becomes the usage error of ``option``."""
    try:
        return parse(text)
    except ValueError as exc:
        parser.error(f"argument {option}: {exc}")


def add_model_arguments(parser: argparse.ArgumentParser, *, encoder_only: bool = False) -> argparse._ArgumentGroup:
    """The basis and the CFT's sizes.  ``encoder_only``: the options of the positional
    encoder alone (pretraining trains nothing else)."""
    recipe = CFTConfig()
    group = parser.add_argument_group("model (defaults: the benchmark recipe)")
    group.add_argument("--store", type=Path, help="basis store (default: the default store)")
    group.add_argument(
        "--radius",
        type=positive(float),
        default=recipe.radius,
        help="truncation radius of the basis; the store must hold it",
    )
    group.add_argument(
        "--d-model",
        type=positive(),
        default=recipe.d_model,
        help="width of the atom tokens and of the positional encoder's output",
    )
    group.add_argument("--hidden", type=positive(), default=recipe.hidden, help="width of the positional encoder")
    group.add_argument(
        "--blocks", type=positive(), default=recipe.encoder_blocks, help="residual blocks of the positional encoder"
    )
    if not encoder_only:
        group.add_argument("--layers", type=positive(), default=recipe.layers, help="Transformer layers")
        add_environment_argument(group)
        group.add_argument(
            "--interactions",
            action=argparse.BooleanOptionalAction,
            default=recipe.interactions,
            help="after every Transformer layer, one round of message passing between each atom and its "
            "neighbours' states, resolved by distance (default: %(default)s)",
        )
        group.add_argument(
            "--composition",
            action=argparse.BooleanOptionalAction,
            default=recipe.composition,
            help="give the head statistics (mean, min, max, mean deviation) of the atoms' element properties "
            "(default: %(default)s)",
        )
        group.add_argument(
            "--position-dropout",
            type=rate,
            default=recipe.position_dropout,
            help="in training, leave out each structure's positional encoding with this probability; the model "
            "then predicts space groups it was not trained on without positions (default: %(default)s, off)",
        )
    return group


def add_environment_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--environment`` / ``--no-environment``, default :attr:`CFTConfig.environment` (on)."""
    parser.add_argument(
        "--environment",
        action=argparse.BooleanOptionalAction,
        default=CFTConfig().environment,
        help="add to each atom's token its neighbourhood: neighbour distances resolved by neighbour species "
        "(default: on; --no-environment is the recipe before 2026-12-02)",
    )


def add_structure_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """How structures become model inputs (:class:`basisdb.model.data.StructureFeaturizer`)."""
    group = parser.add_argument_group("structures")
    group.add_argument("--symprec", type=positive(float), default=DEFAULT_SYMPREC, help="spglib tolerance, Angstrom")
    group.add_argument(
        "--invariance",
        choices=INVARIANCES,
        default="e3",
        help="frames: e3 (mirror images too) or proper (rotations only)",
    )
    return group


def add_training_arguments(
    parser: argparse.ArgumentParser, recipe: TrainConfig | None = None
) -> argparse._ArgumentGroup:
    """The fit's protocol (:func:`basisdb.model.training.fit`), device and threads, with the defaults
    of ``recipe`` (the supervised benchmark recipe, ``TrainConfig()``, unless a task has its own)."""
    recipe = recipe or TrainConfig()
    group = parser.add_argument_group("training (defaults: the benchmark recipe)")
    group.add_argument("--epochs", type=positive(), default=recipe.epochs, help="epoch cap")
    group.add_argument("--batch-size", type=positive(), default=recipe.batch_size, help="examples per step")
    group.add_argument("--lr", type=positive(float), default=recipe.learning_rate, help="peak learning rate")
    group.add_argument(
        "--patience",
        type=positive(),
        default=recipe.patience,
        help="without --minutes: stop after this many epochs without a better validation MAE; "
        "the learning rate halves after every third of it",
    )
    group.add_argument(
        "--minutes",
        type=positive(float, zero=True),
        default=recipe.max_minutes,
        help="time budget of each fit in minutes of wall time, checked at every step, "
        "with a cosine schedule ending at it "
        "(compute-matched); default: none, train to convergence (0 too)",
    )
    add_device_argument(group)
    group.add_argument(
        "--threads",
        type=positive(),
        help="torch threads; also the processes encoding structures and the random forests' jobs, "
        "where a command has them "
        "(default: torch's choice, one process). With --minutes, one thread makes the budget CPU time",
    )
    return group


def add_seed_argument(parser: argparse.ArgumentParser, seeds: str) -> None:
    """``--seed``, default 0; ``seeds`` says what it seeds."""
    parser.add_argument("--seed", type=int, default=0, help=f"seed of {seeds}")


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device``, checked by :func:`basisdb.model.training.resolve_device` before any work."""
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when present)")


def cft_config_from(args: argparse.Namespace, n_slots: int, **fields) -> CFTConfig:
    """The :class:`~basisdb.model.models.CFTConfig` of the options of :func:`add_model_arguments`."""
    options = {
        "radius": "radius",
        "d_model": "d_model",
        "hidden": "hidden",
        "encoder_blocks": "blocks",
        "layers": "layers",
        "environment": "environment",
        "interactions": "interactions",
        "composition": "composition",
        "position_dropout": "position_dropout",
    }
    given = {field: getattr(args, option) for field, option in options.items() if hasattr(args, option)}
    return CFTConfig(n_slots=n_slots, **given, **fields)


def train_config_from(args: argparse.Namespace, seed: int) -> TrainConfig:
    """The :class:`~basisdb.model.training.TrainConfig` of the options of :func:`add_training_arguments`."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        seed=seed,
        max_minutes=args.minutes,
    )


def set_threads(threads: int | None) -> None:
    """torch's thread count, when ``--threads`` was given."""
    if threads:
        torch.set_num_threads(threads)
