"""``python -m model.pretrain --out CKPT``: orbit-distance pretraining of the shared encoder.

Random lattices per crystal family and pairs of random points; the target is the exact orbit
distance (see :mod:`model.geometry`).  The encoder learns embeddings whose Euclidean
distance equals it.  Training pairs are drawn afresh every epoch (``--pairs fresh``, the
default: a fixed set is learnt by heart), held-out pairs once, on lattices of their own.
``--minutes`` bounds the whole run, drawing included.  Held-out MAE, and MAE divided by the
mean distance, overall and per crystal system, go to ``CKPT/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from basisdb import BasisDBError, BasisStore, get_setting
from basisdb.build import parse_number_ranges

from .checkpoint import save_checkpoint
from .data import StructureEncoder, lattice_features
from .geometry import orbit_distance, random_lattice
from .models import CFTConfig
from .modules import PositionalEncoder
from .training import cosine_schedule


def make_pairs(encoder: StructureEncoder, groups, samples_per_group: int, lattices_per_group: int, rng) -> dict[str, np.ndarray]:
    """Feature pairs, lattices, groups and exact orbit distances; loops are per lattice only."""
    parts = {k: [] for k in ("first", "second", "group", "lattice", "distance", "system")}
    per_lattice = max(1, samples_per_group // lattices_per_group)
    for group in groups:
        setting = get_setting(group)
        for _ in range(lattices_per_group):
            lattice = random_lattice(setting, rng)
            x1, x2 = rng.random((per_lattice, 3)), rng.random((per_lattice, 3))
            parts["first"].append(encoder.features(setting.hall_number, x1))
            parts["second"].append(encoder.features(setting.hall_number, x2))
            parts["distance"].append(orbit_distance(setting, lattice, x1, x2))
            parts["group"].append(np.full(per_lattice, group))
            parts["lattice"].append(np.repeat(lattice_features(lattice)[None], per_lattice, axis=0))
            parts["system"].append(np.full(per_lattice, setting.crystal_system))
    return {k: np.concatenate(v) for k, v in parts.items()}


def embedding_distance(encoder: PositionalEncoder, data: dict[str, torch.Tensor], index) -> torch.Tensor:
    group, lattice = data["group"][index], data["lattice"][index]
    difference = encoder(data["first"][index], group, lattice) - encoder(data["second"][index], group, lattice)
    return torch.sqrt((difference**2).sum(-1) + 1e-12)


@torch.no_grad()
def held_out_metrics(encoder, data, index, systems, batch=4096) -> dict:
    encoder.eval()
    predicted = torch.cat([embedding_distance(encoder, data, index[i : i + batch]) for i in range(0, len(index), batch)]).cpu().numpy()
    truth = data["distance"][index].cpu().numpy()
    error = np.abs(predicted - truth)

    def summary(mask):
        return {"n": int(mask.sum()), "mae": float(error[mask].mean()), "mean_distance": float(truth[mask].mean()),
                "mae_over_mean_distance": float(error[mask].mean() / truth[mask].mean())}

    held_systems = systems[index.cpu().numpy()]
    return {"overall": summary(np.ones_like(truth, dtype=bool)),
            "per_crystal_system": {s: summary(held_systems == s) for s in dict.fromkeys(held_systems)}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.pretrain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--radius", type=float, default=4.0)
    parser.add_argument("--groups", default="1-230", help="ITA numbers and ranges (default: all 230)")
    parser.add_argument("--samples-per-group", type=int, default=512)
    parser.add_argument("--lattices-per-group", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=30.0, help="time budget, drawing pairs and the inside of an epoch included (default %(default)s)")
    parser.add_argument(
        "--pairs", choices=("fresh", "fixed"), default="fresh",
        help="fresh: new training pairs (lattices and points) every epoch; fixed: one set drawn once (default %(default)s); the held-out pairs are drawn once either way",
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--held-out", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice); the budget is wall time, so one thread makes it CPU time")
    args = parser.parse_args(argv)
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        groups = parse_number_ranges(args.groups, upper=230)
        if not groups or groups[0] < 1 or groups[-1] > 230:
            raise BasisDBError(f"--groups must lie in 1-230, got {args.groups!r}")
        torch.manual_seed(args.seed)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        rng = np.random.default_rng(args.seed)
        store = BasisStore.open(args.store)
        features = StructureEncoder(store, args.radius)
        began = start = time.monotonic()
        deadline = began + 60 * args.minutes

        def draw(samples_per_group: int, lattices_per_group: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
            raw = make_pairs(features, groups, samples_per_group, lattices_per_group, rng)
            systems = raw.pop("system")
            return {k: torch.as_tensor(v, dtype=torch.long if k == "group" else torch.float32, device=device) for k, v in raw.items()}, systems

        held_per_group = max(1, int(round(args.held_out * args.samples_per_group)))
        train_per_group = args.samples_per_group - held_per_group
        held_lattices = max(1, int(round(args.held_out * args.lattices_per_group)))
        train_lattices = max(1, args.lattices_per_group - held_lattices)
        held_data, held_systems = draw(held_per_group, held_lattices)  # new lattices too: never trained on
        data, _ = draw(train_per_group, train_lattices)
        n_held, n_train = len(held_systems), len(data["distance"])
        print(f"{n_train} training pairs ({args.pairs}) and {n_held} held-out pairs from {len(groups)} groups in "
              f"{time.monotonic() - start:.1f} s; mean orbit distance {data['distance'].mean():.3f} A", file=sys.stderr)

        config = CFTConfig(radius=args.radius, n_slots=features.n_slots, d_model=args.d_model, hidden=args.hidden, encoder_blocks=args.blocks, group_embedding=True)
        encoder = PositionalEncoder(config.n_slots, config.hidden, config.d_model, config.encoder_blocks, group_embedding=config.group_embedding).to(device)
        optimizer = torch.optim.AdamW(encoder.parameters(), lr=args.lr, weight_decay=1e-4)
        steps_per_epoch = math.ceil(n_train / args.batch_size)
        scheduler = cosine_schedule(optimizer, args.epochs * steps_per_epoch, warmup=min(200, steps_per_epoch), budget_seconds=60 * args.minutes)
        epoch, steps, pairs_seen, drawing = 0, 0, 0, 0.0
        from tqdm.auto import tqdm

        bar = tqdm(total=round(60 * args.minutes), desc="pretraining", unit="s", file=sys.stderr)  # the budget is the bound
        for epoch in range(1, args.epochs + 1):
            if epoch > 1 and args.pairs == "fresh":
                drawn = time.monotonic()
                data, _ = draw(train_per_group, train_lattices)
                drawing += time.monotonic() - drawn
            encoder.train()
            shuffled = torch.randperm(n_train, device=device)
            losses = []
            for i in range(0, n_train, args.batch_size):
                if losses and time.monotonic() > deadline:
                    break
                index = shuffled[i : i + args.batch_size]
                loss = nn.functional.smooth_l1_loss(embedding_distance(encoder, data, index), data["distance"][index], beta=0.1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(encoder.parameters(), 5.0)
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                pairs_seen += len(index)
                bar.n = min(bar.total, round(time.monotonic() - began))
                bar.set_postfix_str(f"epoch {epoch}, loss {losses[-1]:.4f}", refresh=False)
                bar.update(0)
            steps += len(losses)
            if time.monotonic() > deadline:
                break
        bar.close()
        seconds = time.monotonic() - began
        metrics = held_out_metrics(encoder, held_data, torch.arange(n_held, device=device), held_systems)
        metrics.update({"epochs": epoch, "steps": steps, "pairs_seen": pairs_seen, "pairs": args.pairs, "train_seconds": seconds,
                        "drawing_seconds": drawing, "n_pairs_per_epoch": n_train, "n_held_out": n_held, "groups": args.groups,
                        "device": str(device), "torch_threads": torch.get_num_threads(), "config": config.to_dict()})
        save_checkpoint(args.out, kind="encoder", module=encoder, config=config, store=store, metrics=metrics["overall"])
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        overall = metrics["overall"]
        print(f"held-out MAE {overall['mae']:.4f} A, mean orbit distance {overall['mean_distance']:.3f} A, ratio {overall['mae_over_mean_distance']:.4f} ({epoch} epochs, {seconds / 60:.1f} min)")
        for system, row in metrics["per_crystal_system"].items():
            print(f"  {system:<13} MAE {row['mae']:.4f} A  mean {row['mean_distance']:.3f} A  ratio {row['mae_over_mean_distance']:.4f}  (n={row['n']})")
        return 0
    except (BasisDBError, ValueError) as exc:  # ValueError: --groups that are not numbers
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
