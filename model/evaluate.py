"""``basisdb evaluate --dataset NAME --target T [--folds 5 --seed S --training-seeds 0,1,2 ...]``
or ``basisdb evaluate --config RUN/config.toml``

Cross-validates the CFT against its peers on the same random folds of a built-in dataset:
the training mean, a random forest on Magpie composition statistics, the same forest with five
simple structure features added (density, volume per atom, packing fraction, space group,
primitive sites), a CGCNN trained from scratch, and (with ``--pretrained``) the CFT fine-tuned
from the orbit-distance encoder.

Neural models hold out 10% of each training fold for early stopping and train under one of
two protocols: to convergence (the default; ``--patience``, ``--epochs`` as a cap) or
compute-matched (``--minutes M``: the same wall-time budget for every neural method).  Each
fit's wall time and epochs are recorded.  ``--training-seeds 0,1,2`` evaluates the models at
each of those seeds on the same folds, into one result (default: ``--seed``).

With ``--holdout-groups`` (``2,14,15``, ``143-194`` or a crystal system such as ``cubic``),
every structure of those space groups leaves the folds and forms an unseen-group test set that
each fold's models also predict: MAE on seen groups (the folds' test sets) against MAE on
groups no model was trained on.

With ``--transfer-from DATASET:TARGET`` each neural method is first fitted to convergence on
another property (its structures that share a reduced formula with the evaluated dataset, or
lie in a held-out group, left out), and every fold's fit starts from those weights (with
``--fresh-head``, all but the output head's, which starts afresh; with ``--fine-tune-lr``, at
a learning rate of its own). A source fit is kept in the cache directory (``--encodings``)
per configuration, and a later run that would fit it again (the other target of the same
dataset, say) reads its weights back (:mod:`basisdb.model.source_fits`; ``--refit-source``
fits it again).

A run is its configuration, every setting resolved: ``--config RUN/config.toml`` reruns a
written run exactly, and refuses every option that would change it; only where it runs and
writes (``--out``, ``--store``, ``--data-dir``, ``--device``, ``--threads``, the encoding
cache, ``--refit-source``, ``--plots``) may be given with it.

Writes, under ``--out``: ``config.toml`` (the run), ``results.json.gz`` (every fold, every
out-of-fold prediction: :mod:`basisdb.model.results`), ``results.md`` (the table) and, with
``--plots``, ``parity_<target>.png`` and, with held-out groups, ``seen_vs_unseen_<target>.png``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from basisdb import BasisStore, command_parser, run_command

from .baselines import CGCNNConfig
from .checkpoint import read_pretrained_encoder
from .cli import (
    STDOUT,
    add_model_arguments,
    add_seed_argument,
    add_structure_arguments,
    add_training_arguments,
    cft_config_from,
    option_type,
    parse_groups,
    positive,
    set_threads,
    train_config_from,
)
from .crossval import cross_validate
from .data import ROUTINGS, StructureFeaturizer
from .datasets import DATASETS, load_dataset
from .encoding_cache import EncodingCache, add_cache_arguments, cache_from_arguments
from .methods import METHODS, NEURAL, NeuralSettings
from .models import CFTConfig
from .prepared import prepare
from .report import markdown, plots
from .results import ResultError, RunConfig, Transfer, read_config, write_run
from .source_fits import SourceFitCache
from .training import resolve_device
from .transfer import parse_transfer, transfer_source

__all__ = ["build_parser", "main"]

# What may go with --config: where a run runs and writes, never what it is.
RUN_PLACE_OPTIONS = frozenset(
    {"config", "out", "plots", "store", "data_dir", "device", "threads", "encodings", "no_encoding_cache"}
    | {"refit_source"}
)


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",")]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    return methods


def _training_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated integers such as 0,1,2, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the training seeds must be distinct, got {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("basisdb evaluate", __doc__)
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="rerun the run of this config.toml (or of the folder holding it) exactly, written by an earlier "
        "evaluate; it takes the place of every option below that sets the run",
    )
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), help="a built-in dataset (basisdb data list); required without --config"
    )
    parser.add_argument("--target", help="for example log10_K_VRH (see basisdb data list); required without --config")
    parser.add_argument("--folds", type=positive(), default=5, help="folds of the cross-validation, at least 2")
    add_seed_argument(parser, "the folds (and of the models, without --training-seeds)")
    parser.add_argument(
        "--training-seeds",
        type=option_type(_training_seeds),
        metavar="S,S,...",
        help="seeds of the models' initialization and batches, and of the forests (default: --seed): the run "
        "is evaluated at each, on the same folds (those of --seed), into one result",
    )
    parser.add_argument(
        "--holdout-groups", metavar="SPEC", help="space groups kept out of training: '2,14,15', '143-194', 'cubic'"
    )
    parser.add_argument(
        "--methods",
        type=option_type(_methods),
        help=f"comma-separated subset of {','.join(METHODS)} (default: all; cft-pretrained needs --pretrained)",
    )
    parser.add_argument(
        "--pretrained",
        type=Path,
        help="orbit-distance pretrained encoder (basisdb pretrain); the CFT then takes its architecture",
    )
    parser.add_argument(
        "--transfer-from",
        metavar="DATASET:TARGET",
        type=option_type(parse_transfer),
        help="fit each neural method on another property first (for example flla_2015:formation_energy_per_atom; "
        "its structures that share a formula with --dataset, or lie in a held-out group, left out) and start "
        "every fold's fit from those weights",
    )
    parser.add_argument(
        "--fresh-head",
        action="store_true",
        help="with --transfer-from: every fold's fit starts its output head afresh, the rest from the source fit",
    )
    parser.add_argument(
        "--fine-tune-lr",
        type=positive(float),
        help="with --transfer-from: the peak learning rate of every fold's fit (default: --lr, which the "
        "source fit uses)",
    )
    parser.add_argument(
        "--refit-source",
        action="store_true",
        help="fit --transfer-from's source again rather than read its weights back from the cache directory "
        "(--encodings), where a fit is kept per configuration and reused by later runs",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder: config.toml, results.json.gz, results.md (default: evaluation/<dataset>-<target>"
        "[-holdout]); '-' prints the table on stdout and keeps nothing",
    )
    parser.add_argument("--plots", action="store_true", help="also draw the parity (and seen vs unseen) figures")
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the datasets' folder (default: $BASISDB_DATA_DIR or the user cache)",
    )
    parser.add_argument(
        "--limit",
        type=positive(),
        help="use a random subset of this many structures, of --transfer-from's dataset too (quick checks)",
    )
    parser.add_argument(
        "--train-size",
        type=positive(),
        help="train every method of a fold on the same random subset of this many of its training structures, "
        "and test it on the whole fold (a point of a learning curve)",
    )
    add_model_arguments(parser)
    add_structure_arguments(parser)
    add_training_arguments(parser)
    ablation = parser.add_argument_group("ablations of the CFT (what carries its result)")
    ablation.add_argument(
        "--routing",
        choices=ROUTINGS,
        default="group",
        help="identity: plain Fourier features of the P1 basis instead of the group's invariant functions",
    )
    ablation.add_argument(
        "--no-lattice-branch", action="store_true", help="drop the lattice branch of the positional encoder"
    )
    ablation.add_argument("--no-radial-bias", action="store_true", help="drop the radial pair bias of the attention")
    ablation.add_argument(
        "--no-positions",
        action="store_true",
        help="drop the positional encoding: atom tokens carry elements and environments alone",
    )
    add_cache_arguments(parser)
    return parser


def _given_options(argv: list[str]) -> list[argparse.Action]:
    """The options on the command line itself, whatever their value (a default given
    explicitly is given)."""
    quiet = build_parser()
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    given = vars(quiet.parse_args(argv))
    return [action for action in quiet._actions if action.dest in given]


def _config_of_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    """The run the options describe, its CFT's input width and pretrained architecture still
    to be resolved against the store (:func:`_resolved`)."""
    for option, given in (("--dataset", args.dataset), ("--target", args.target)):
        if not given:
            parser.error(f"{option} is required (or --config FILE, to rerun a run)")
    for option, given in (("--fresh-head", args.fresh_head), ("--fine-tune-lr", args.fine_tune_lr)):
        if given and not args.transfer_from:
            parser.error(f"{option} applies to the transfer of --transfer-from, which is not given")
    methods = args.methods or [m for m in METHODS if m != "cft-pretrained" or args.pretrained]
    training_seeds = args.training_seeds or (args.seed,)
    cft = cft_config_from(
        args,
        CFTConfig().n_slots,
        lattice_branch=not args.no_lattice_branch,
        radial_bias=not args.no_radial_bias,
        positional_encoding=not args.no_positions,
    )
    transfer = None
    if args.transfer_from:
        transfer = Transfer(":".join(args.transfer_from), args.fresh_head, args.fine_tune_lr)
    return RunConfig(
        dataset=args.dataset,
        target=args.target,
        methods=tuple(methods),
        folds=args.folds,
        seed=args.seed,
        training_seeds=training_seeds,
        holdout=args.holdout_groups,
        train_size=args.train_size,
        limit=args.limit,
        symprec=args.symprec,
        invariance=args.invariance,
        routing=args.routing,
        cft=cft,
        train=train_config_from(args, seed=training_seeds[0]),
        cgcnn=CGCNNConfig(),
        pretrained=str(args.pretrained) if args.pretrained else None,
        transfer=transfer,
    )


def _refusal(config: RunConfig, refit_source: bool) -> str | None:
    """Why ``config`` cannot run, in the words of the options that set it; None if it can."""
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown:
        return f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}"
    if "cft-pretrained" in config.methods and not config.pretrained:
        return "cft-pretrained needs --pretrained CKPT (written by basisdb pretrain)"
    if config.folds < 2:
        return f"--folds must be at least 2, got {config.folds}"
    if refit_source and config.transfer is None:
        return "--refit-source applies to the transfer of --transfer-from, which is not given"
    if config.transfer is not None:
        try:
            source = parse_transfer(config.transfer.source)
        except ValueError as exc:
            return f"argument --transfer-from: {exc}"
        if config.pretrained:
            return "--transfer-from and --pretrained both set the neural methods' initial weights; give one"
        if not any(m in NEURAL for m in config.methods):
            return f"--transfer-from starts the neural methods ({', '.join(NEURAL)}) elsewhere; --methods names none"
        if source == (config.dataset, config.target):
            return "--transfer-from names the evaluated dataset and target: its test folds would be trained on"
    if config.pretrained and not config.cft.positional_encoding:
        return "--pretrained fine-tunes the positional encoder, which --no-positions drops"
    if config.cft.position_dropout and not config.cft.positional_encoding:
        return "--position-dropout leaves out the positional encoding at times; --no-positions drops it always"
    if config.holdout:
        try:
            parse_groups(config.holdout)
        except ValueError as exc:
            return f"argument --holdout-groups: {exc}"
    return None


def _resolved(config: RunConfig, featurizer: StructureFeaturizer, store: BasisStore) -> tuple[RunConfig, dict | None]:
    """``config`` with its CFT's input width that of the featurizer and, with a pretrained
    encoder, the encoder's architecture (then scratch and fine-tuned CFTs differ only in
    initialization); and the encoder, read."""
    cft = replace(config.cft, n_slots=featurizer.n_slots)
    pretrained = None
    if config.pretrained:
        pretrained, cft = read_pretrained_encoder(config.pretrained, store, cft)
    return replace(config, cft=cft), pretrained


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        fixed = [a for a in _given_options(argv) if a.dest not in RUN_PLACE_OPTIONS]
        if fixed:
            named = ", ".join("/".join(action.option_strings) for action in fixed)
            parser.error(
                f"--config reruns {args.config} exactly: {named} would change it (give the run a config file "
                "of its own, or leave --config out)"
            )
        config = read_config(args.config)
    else:
        config = _config_of_options(parser, args)
    refusal = _refusal(config, args.refit_source)
    if refusal:
        parser.error(refusal)
    if args.out == STDOUT and args.plots:
        parser.error("--plots draws into the run's folder: give --out a folder, not '-' (stdout)")
    holdout = parse_groups(config.holdout) if config.holdout else []
    set_threads(args.threads)
    resolve_device(args.device)  # a device that is not there is an error before any work
    store = BasisStore.open(args.store)
    featurizer = StructureFeaturizer(
        store, config.cft.radius, config.symprec, config.invariance, routing=config.routing
    )
    resolved, pretrained = _resolved(config, featurizer, store)
    if args.config and resolved != config:
        raise ResultError(
            f"{args.config} cannot be rerun exactly: its CFT settings {config.cft} are not those of the store's basis "
            f"and its encoder, {resolved.cft}"
        )
    config = resolved
    settings = NeuralSettings.of(config, pretrained, device=args.device)
    dataset = load_dataset(config.dataset, config.target, args.data_dir)
    dataset.report_rejected()
    if config.limit:
        dataset = dataset.sample(config.limit, config.seed)
    print(f"{dataset.dataset}: {len(dataset)} structures; encoding, graphs, composition features ...", file=sys.stderr)
    cache = cache_from_arguments(args, featurizer)
    data, rejected = prepare(dataset, featurizer, cache=cache, workers=args.threads or 1)
    source, transfer = None, None
    if config.transfer is not None:
        source, transfer = transfer_source(
            *parse_transfer(config.transfer.source),
            dataset,
            holdout,
            featurizer,
            cache=cache,
            workers=args.threads or 1,
            limit=config.limit,
            seed=config.seed,
            directory=args.data_dir,
        )
    source_fits = None
    if source is not None:
        encoding = EncodingCache.of(featurizer).configuration
        source_fits = SourceFitCache.at(args.encodings, encoding, reuse=not args.refit_source)
    result = cross_validate(data, config, settings, holdout, sys.stderr, source, source_fits)
    result = replace(result, transfer=transfer, rejected=tuple(tuple(pair) for pair in dataset.rejected + rejected))
    if args.out == STDOUT:
        print(markdown(result), end="")
        print("--out -: the table is on stdout; the run (config.toml, results) was not kept", file=sys.stderr)
        return 0
    out = args.out or Path("evaluation") / f"{config.dataset}-{config.target}{'-holdout' if holdout else ''}"
    write_run(result, out)
    table = markdown(result, out)
    (out / "results.md").write_text(table)
    written = [out / "config.toml", out / "results.json.gz", out / "results.md"]
    if args.plots:
        written += plots(result, out)
    print(table)
    print("wrote " + ", ".join(str(path) for path in written), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
