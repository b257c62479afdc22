"""``basisdb train (--data DIR [--target T --unit U] | --dataset NAME --target T) --out CKPT [--pretrained CKPT]``

DIR is a CGCNN-style folder: ``id_prop.csv`` with ``material_id,value`` rows and one
``<material_id>.cif`` (or other structure file) per row; ``--target`` and ``--unit`` name
its values, for the checkpoint and the predictions' column.  NAME is a built-in Materials
Project dataset (``basisdb data list``; fetch it once with ``basisdb data fetch``), for
example ``--dataset elastic_tensor --target log10_K_VRH``.  Runs unchanged under
``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from basisdb import BasisStore, command_parser, output_path, run_command

from .checkpoint import load_pretrained_encoder, read_pretrained_encoder, save_checkpoint
from .cli import (
    add_model_arguments,
    add_seed_argument,
    add_structure_arguments,
    add_training_arguments,
    cft_config_from,
    fraction,
    positive,
    set_threads,
    train_config_from,
)
from .data import StructureFeaturizer, read_structure_directory
from .datasets import DATASETS, DatasetError, load_dataset
from .encoding_cache import add_cache_arguments, cache_from_arguments
from .models import CrystalFourierTransformer
from .training import DistributedContext, Regression, fit


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("basisdb train", __doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder with id_prop.csv and one structure file per row")
    source.add_argument(
        "--dataset", choices=sorted(DATASETS), help="a built-in Materials Project dataset (needs --target)"
    )
    parser.add_argument(
        "--target",
        help="target of --dataset (for example log10_K_VRH), or the name of a --data folder's values "
        "(recorded in the checkpoint; predictions are labelled with it)",
    )
    parser.add_argument(
        "--unit", help="unit of a --data folder's values, for example eV/atom (a built-in dataset knows its own)"
    )
    parser.add_argument(
        "--limit", type=positive(), help="train on a random subset of this many structures of --dataset (quick checks)"
    )
    parser.add_argument(
        "--out", required=True, type=output_path("a checkpoint (a folder)"), help="checkpoint directory to write"
    )
    parser.add_argument(
        "--pretrained",
        type=Path,
        help="orbit-distance pretrained encoder (basisdb pretrain); the CFT then takes its sizes",
    )
    parser.add_argument(
        "--val-fraction", type=fraction, default=0.1, help="share of the structures held out for validation"
    )
    add_seed_argument(parser, "the validation split, the initialization and the batches")
    add_model_arguments(parser)
    add_structure_arguments(parser)
    add_training_arguments(parser)
    add_cache_arguments(parser)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dataset and not args.target:
        parser.error(f"--dataset {args.dataset} needs --target, one of {', '.join(DATASETS[args.dataset].targets)}")
    if args.unit and args.dataset:
        parser.error(f"--unit goes with --data: {args.dataset}'s {args.target} is in its own unit")
    source = f"{args.dataset}:{args.target}" if args.dataset else str(args.data)
    context = DistributedContext(args.device)
    try:
        set_threads(args.threads)
        torch.manual_seed(args.seed)
        store = BasisStore.open(args.store)
        featurizer = StructureFeaturizer(store, args.radius, args.symprec, args.invariance)
        rejected_rows = []
        if args.dataset:
            dataset = load_dataset(args.dataset, args.target)
            dataset.report_rejected(sys.stderr if context.main else None)
            if args.limit:
                dataset = dataset.sample(args.limit, args.seed)
            structures, targets, rejected_rows = (
                list(zip(dataset.ids, dataset.structures)),
                dict(zip(dataset.ids, dataset.values)),
                dataset.rejected,
            )
        else:
            structures, targets = read_structure_directory(args.data)
        items, rejected = featurizer.encode_many(
            structures,
            report=sys.stderr if context.main else None,
            cache=cache_from_arguments(args, featurizer),
            workers=args.threads or 1,
            progress=context.main,
        )
        if len(items) < 2:
            raise DatasetError(f"need at least 2 usable structures in {source}, found {len(items)}")
        y = np.array([targets[item.label] for item in items])
        order = np.random.default_rng(args.seed).permutation(len(items))
        n_val = max(1, int(round(args.val_fraction * len(items))))
        val_index, train_index = order[:n_val], order[n_val:]
        config = cft_config_from(args, featurizer.n_slots)
        pretrained = None
        if args.pretrained:
            pretrained, config = read_pretrained_encoder(args.pretrained, store, config)
        model = CrystalFourierTransformer(config)
        if pretrained:
            load_pretrained_encoder(model, pretrained)
        model.record_training_groups(items[i].group for i in train_index)
        train_config = train_config_from(args, seed=args.seed)
        task = Regression([items[i] for i in train_index], y[train_index], [items[i] for i in val_index], y[val_index])
        unit = DATASETS[args.dataset].targets[args.target].unit if args.dataset else args.unit
        common = {
            "target": args.target,
            "unit": unit,
            "symprec": args.symprec,
            "invariance": args.invariance,
            "train_config": train_config.to_dict(),
            "data": source,
        }

        def save(model, epoch, val_mae):
            normalization = task.normalization  # the one the fit learns with
            save_checkpoint(
                args.out,
                kind="cft",
                module=model,
                config=config,
                store=store,
                target_mean=normalization.mean,
                target_std=normalization.std,
                best_epoch=epoch,
                best_val_mae=val_mae,
                **common,
            )

        result = fit(model, task, train_config, context, on_best=save)
        if context.main:
            metrics = {
                "best_val_mae": result.best_val_mae,
                "best_epoch": result.best_epoch,
                "stopped": result.stopped,
                "n_train": int(len(train_index)),
                "n_val": int(len(val_index)),
                "rejected": [{"id": label, "reason": reason} for label, reason in rejected_rows + rejected],
                "history": result.history,
                "world_size": context.world,
            }
            (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
            print(f"best validation MAE {result.best_val_mae:.4f} at epoch {result.best_epoch}; checkpoint {args.out}")
        return 0
    finally:
        context.close()


if __name__ == "__main__":
    sys.exit(run_command(main))
