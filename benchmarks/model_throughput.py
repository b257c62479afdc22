"""Training and inference throughput of the CFT and the CGCNN baseline, in structures per
second, on real Materials Project structures (elastic_tensor, or another built-in dataset
with ``--dataset``), measured in the same run.

Naive baseline for inference: one structure per forward pass (what a loop over a list of
structures does); ours: batches of 32 (padding for the CFT, disjoint graphs for the CGCNN).
The last column counts the floating-point operations of prediction's matrix products and
attention (``torch.utils.flop_counter``), per structure: what either model must compute.
Preparation (standardization + basis features + pair profiles for the CFT; neighbour lists
for the CGCNN) is timed separately: it is done once per structure and cached.  For the CFT it
is measured three ways: one process without the cache (the naive baseline), ``--threads``
processes, and read back from the on-disk encoding cache (what every later fold, seed, method
and run of ``basisdb evaluate`` and ``basisdb train`` pays).

    basisdb data fetch   # once
    python benchmarks/model_throughput.py [--dataset flla_2015] [--structures 400] [--epochs 2] [--threads 2]

It takes the model options of ``basisdb train`` (``--d-model 64 --layers 1``, ...): the CFT
measured is the benchmark recipe unless they say otherwise, and the run prints what differs.
``--precision bfloat16`` runs every forward pass of both models, in training and prediction,
under ``torch.autocast`` (matrix products in bfloat16, accumulated in float32): a measurement
of what lower precision would buy each model on this CPU, not an option of the library.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
import torch._dynamo  # noqa: F401  the first optimizer of a process imports it (0.8 s), which is not a cost of the model timed first
from torch.utils.flop_counter import FlopCounterMode

from basisdb import BasisStore
from basisdb.model.baselines import CGCNN, crystal_graph, graph_collate
from basisdb.model.cli import add_model_arguments, cft_config_from
from basisdb.model.data import StructureFeaturizer
from basisdb.model.datasets import DATASETS, load_dataset
from basisdb.model.encoding_cache import EncodingCache
from basisdb.model.models import CFTConfig, CrystalFourierTransformer
from basisdb.model.training import DistributedContext, Regression, TrainConfig, cft_collate, fit, predict_normalized


def timed(function):
    began = time.perf_counter()
    result = function()
    return result, time.perf_counter() - began


def best_of(repeats: int, function) -> float:
    """Fastest of ``repeats`` timed calls, after one untimed warm-up call."""
    function()
    return min(timed(function)[1] for _ in range(repeats))


class Autocast(torch.nn.Module):
    """``model`` with its forward passes under ``torch.autocast(dtype)`` on the CPU, and its
    outputs in float32 (what the losses and the frame averages take)."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, batch):
        with torch.autocast("cpu", dtype=self.dtype):
            return self.model(batch).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="elastic_tensor")
    parser.add_argument("--structures", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="inference timings: best of this many, after a warm-up")
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        default="float32",
        help="bfloat16: both models' forward passes under torch.autocast (a measurement, not a library option)",
    )
    add_model_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset(args.dataset, next(iter(DATASETS[args.dataset].targets)))
    data = data.subset(np.random.default_rng(0).choice(len(data), args.structures, replace=False))
    pairs = list(zip(data.ids, data.structures))
    n = len(pairs)
    featurizer = StructureFeaturizer(BasisStore.open(args.store), args.radius)
    featurizer.encode(data.structures[0])  # opens the store
    (items, _), encode_seconds = timed(lambda: featurizer.encode_many(pairs, progress=False))
    with tempfile.TemporaryDirectory() as directory:
        cache = EncodingCache.of(featurizer, directory)
        _, parallel_seconds = timed(
            lambda: featurizer.encode_many(pairs, cache=cache, workers=args.threads, progress=False)
        )
        _, cached_seconds = timed(lambda: featurizer.encode_many(pairs, cache=cache, progress=False))
    processes = f"{args.threads} process{'es' if args.threads > 1 else ''}"
    print(
        f"CFT preparation, structures/s: one process {n / encode_seconds:.1f} (naive baseline); "
        f"{processes} {n / parallel_seconds:.1f} ({encode_seconds / parallel_seconds:.1f}x); "
        f"from the encoding cache {n / cached_seconds:.0f} ({encode_seconds / cached_seconds:.0f}x)"
    )
    graphs, graph_seconds = timed(lambda: [crystal_graph(s) for s in data.structures])
    frames = np.mean([item.n_frames for item in items])
    distinct = np.mean([len(item.distinct_frames[0]) for item in items])
    atoms = np.mean([item.n_atoms for item in items])
    standardized = np.mean([item.n_atoms * item.n_copies for item in items])
    print(
        f"{n} {args.dataset} structures: {atoms:.1f} atoms per CFT sequence (one per centring class; "
        f"{standardized:.1f} in the standardized cell), "
        f"{frames:.2f} origin frames on average ({distinct:.2f} distinct inputs); {args.threads} torch threads"
    )
    config = cft_config_from(args, featurizer.n_slots)
    changed = {k: v for k, v in config.to_dict().items() if v != getattr(CFTConfig(), k)}
    print(f"CFT: the benchmark recipe{''.join(f', {k} {v}' for k, v in changed.items())}")
    if args.precision != "float32":
        print(f"both models' forward passes under torch.autocast({args.precision})")
    print(
        f"{'':10s} {'prepare/s':>10s} {'train/s':>10s} {'infer/s':>10s} {'infer 1-by-1/s':>15s} {'batched/naive':>14s}"
        f" {'infer MFLOP':>12s}"
    )
    models = {
        "CFT": (
            CrystalFourierTransformer(config),
            items,
            cft_collate,
            encode_seconds,
        ),  # the benchmark recipe unless the model options say otherwise
        "CGCNN": (CGCNN(), graphs, graph_collate, graph_seconds),
    }
    context = DistributedContext("cpu")
    for name, (model, inputs, collate_fn, prepare_seconds) in models.items():
        config = TrainConfig(epochs=args.epochs, batch_size=32, patience=args.epochs + 1)
        if args.precision != "float32":
            model = Autocast(model, getattr(torch, args.precision))
        split = int(0.9 * n)
        task = Regression(inputs[:split], data.values[:split], inputs[split:], data.values[split:], collate_fn)
        _, train_seconds = timed(lambda model=model, task=task, config=config: fit(model, task, config, context))
        _, validate_seconds = timed(
            lambda model=model, inputs=inputs, split=split, collate_fn=collate_fn: predict_normalized(
                model, inputs[split:], "cpu", collate_fn=collate_fn
            )
        )
        train_rate = (
            args.epochs * split / (train_seconds - args.epochs * validate_seconds)
        )  # fit validates once per epoch
        batched = best_of(
            args.repeats,
            lambda model=model, inputs=inputs, collate_fn=collate_fn: predict_normalized(
                model, inputs, "cpu", batch_size=32, collate_fn=collate_fn
            ),
        )
        one_by_one = best_of(
            1,
            lambda model=model, inputs=inputs, collate_fn=collate_fn: predict_normalized(
                model, inputs, "cpu", batch_size=1, collate_fn=collate_fn
            ),
        )
        with FlopCounterMode(display=False) as counter:  # matrix products and attention, per structure
            predict_normalized(model, inputs, "cpu", batch_size=32, collate_fn=collate_fn)
        print(
            f"{name:10s} {n / prepare_seconds:10.1f} {train_rate:10.1f} {n / batched:10.1f} "
            f"{n / one_by_one:15.1f} {one_by_one / batched:13.1f}x {counter.get_total_flops() / n / 1e6:12.1f}"
        )


if __name__ == "__main__":
    main()
