"""``python -m model.train (--data DIR | --dataset NAME --target T) --out CKPT [--epochs N] [--pretrained CKPT]``

DIR is a CGCNN-style folder: ``id_prop.csv`` with ``material_id,value`` rows and one
``<material_id>.cif`` per row.  NAME is a built-in Materials Project dataset
(``python -m model.data list``; fetch it once with ``python -m model.data fetch``), for
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

from basisdb import DEFAULT_SYMPREC, INVARIANCES, BasisDBError, BasisStore

from .checkpoint import CheckpointError, load_pretrained_encoder, read_pretrained_encoder, save_checkpoint
from .data import StructureEncoder, read_structure_directory
from .datasets import DATASETS, DatasetError, load_dataset
from .encoding_cache import add_cache_arguments, cache_from_arguments
from .models import CFTConfig, CrystalFourierTransformer
from .training import DistributedContext, TrainConfig, fit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder with id_prop.csv and CIF files")
    source.add_argument("--dataset", choices=sorted(DATASETS), help="a built-in Materials Project dataset (needs --target)")
    parser.add_argument("--target", help="target of --dataset, for example log10_K_VRH")
    parser.add_argument("--limit", type=int, help="train on a random subset of this many structures of --dataset (quick checks)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    parser.add_argument("--pretrained", type=Path, help="orbit-distance pretrained encoder checkpoint")
    parser.add_argument("--store", type=Path, help="basis store (default: the default store)")
    parser.add_argument("--radius", type=float, default=4.0)
    parser.add_argument("--symprec", type=float, default=DEFAULT_SYMPREC, help="spglib tolerance, Angstrom (default %(default)s)")
    parser.add_argument("--invariance", choices=INVARIANCES, default="e3", help="frames: e3 (mirror images too) or proper (default %(default)s)")
    recipe, architecture = TrainConfig(), CFTConfig()  # the defaults are the benchmark recipe
    parser.add_argument("--epochs", type=int, default=recipe.epochs, help="epoch cap (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size, help="(default %(default)s)")
    parser.add_argument("--lr", type=float, default=recipe.learning_rate, help="peak learning rate (default %(default)s)")
    parser.add_argument("--patience", type=int, default=recipe.patience, help="stop after this many epochs without a better validation MAE; the learning rate halves after every third of it (default %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="(default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    parser.add_argument("--minutes", type=float, default=None, help="time budget in minutes, the inside of an epoch included, with a cosine schedule ending at it (default: none, train to convergence)")
    parser.add_argument("--d-model", type=int, default=architecture.d_model, help="(default %(default)s)")
    parser.add_argument("--hidden", type=int, default=architecture.hidden, help="positional-encoder width (default %(default)s)")
    parser.add_argument("--blocks", type=int, default=architecture.encoder_blocks, help="residual blocks of the positional encoder (default %(default)s)")
    parser.add_argument("--layers", type=int, default=architecture.layers, help="Transformer layers (default %(default)s)")
    parser.add_argument("--dropout", type=float, default=architecture.dropout, help="(default %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")
    parser.add_argument("--threads", type=int, help="torch threads, and processes encoding structures; default: torch's choice, one process")
    add_cache_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    context = DistributedContext(args.device)
    try:
        torch.manual_seed(args.seed)
        store = BasisStore.open(args.store)
        encoder = StructureEncoder(store, args.radius, args.symprec, args.invariance)
        if args.dataset:
            if not args.target:
                raise ValueError(f"--dataset {args.dataset} needs --target, one of {', '.join(DATASETS[args.dataset].targets)}")
            dataset = load_dataset(args.dataset, args.target)
            dataset.report_rejected(sys.stderr if context.main else None)
            if args.limit:
                dataset = dataset.sample(args.limit, args.seed)
            structures, targets = list(zip(dataset.ids, dataset.structures)), dict(zip(dataset.ids, dataset.values))
        else:
            structures, targets = read_structure_directory(args.data)
        if args.threads:
            torch.set_num_threads(args.threads)
        items, rejected = encoder.encode_many(
            structures, report=sys.stderr if context.main else None, cache=cache_from_arguments(args, encoder),
            workers=args.threads or 1, progress=context.main,
        )
        if len(items) < 2:
            raise BasisDBError(f"need at least 2 usable structures in {args.data}, found {len(items)}")
        y = np.array([targets[item.label] for item in items])
        order = np.random.default_rng(args.seed).permutation(len(items))
        n_val = max(1, int(round(args.val_fraction * len(items))))
        val_index, train_index = order[:n_val], order[n_val:]
        config = CFTConfig(radius=args.radius, n_slots=encoder.n_slots, d_model=args.d_model, hidden=args.hidden, encoder_blocks=args.blocks, layers=args.layers, dropout=args.dropout)
        pretrained = None
        if args.pretrained:
            pretrained, config = read_pretrained_encoder(args.pretrained, store, config)
        model = CrystalFourierTransformer(config)
        if pretrained:
            load_pretrained_encoder(model, pretrained)
        train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, patience=args.patience, seed=args.seed, max_minutes=args.minutes)
        common = {"symprec": args.symprec, "invariance": args.invariance, "train_config": train_config.to_dict(), "data": f"{args.dataset}:{args.target}" if args.dataset else str(args.data)}

        def save(model, epoch, val_mae):
            save_checkpoint(args.out, kind="cft", module=model, config=config, store=store, target_mean=float(np.mean(y[train_index])), target_std=float(np.std(y[train_index]) or 1.0), best_epoch=epoch, best_val_mae=val_mae, **common)

        result = fit(model, [items[i] for i in train_index], y[train_index], [items[i] for i in val_index], y[val_index], train_config, context, on_best=save)
        if context.main:
            metrics = {
                "best_val_mae": result["best_val_mae"],
                "best_epoch": result["best_epoch"],
                "n_train": int(len(train_index)),
                "n_val": int(len(val_index)),
                "rejected": [{"id": label, "reason": reason} for label, reason in (dataset.rejected if args.dataset else []) + rejected],
                "history": result["history"],
                "world_size": context.world,
            }
            (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
            print(f"best validation MAE {result['best_val_mae']:.4f} at epoch {result['best_epoch']}; checkpoint {args.out}")
        return 0
    except (BasisDBError, CheckpointError, DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        context.close()


if __name__ == "__main__":
    sys.exit(main())
