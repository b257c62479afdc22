"""The property-regression training loop, its schedule and DDP (orbit-distance pretraining is in model.pretrain)."""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .data import Batch, EncodedStructure, collate
from .models import average_over_frames

Collate = Callable[[Sequence, bool, "np.random.Generator | None"], Any]

__all__ = ["TrainConfig", "DistributedContext", "fit", "evaluate_mae", "cosine_schedule", "PlateauSchedule", "cft_collate", "predict_normalized", "size_batches", "shuffled_batches"]


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains; the defaults are the benchmark recipe (BENCHMARKS.md).

    Two protocols: without ``max_minutes`` (None or 0) training runs to convergence: the
    learning rate halves after every ``patience // 3`` epochs without a better validation MAE,
    and training stops after ``patience`` such epochs or at ``epochs`` (a generous cap).  With
    ``max_minutes``, the fit is compute-matched: its wall time, the inside of an epoch
    included, is bounded, and the learning rate anneals (cosine) to zero at the budget's end.
    """

    epochs: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 30
    seed: int = 0
    max_minutes: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class DistributedContext:
    """torchrun's environment: one process per rank (gloo on CPU, NCCL on GPUs); a single
    process otherwise."""

    def __init__(self, device: str | None = None):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.world > 1:
            return nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return model

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _past(deadline: float | None, context: DistributedContext) -> bool:
    """Whether ``deadline`` (time.monotonic()) has passed, agreed by every rank: under DDP a
    rank that stopped alone would leave the others waiting in their next all-reduce."""
    if deadline is None:
        return False
    past = time.monotonic() > deadline
    if context.world > 1:
        flag = torch.tensor([float(past)], device=context.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        past = bool(flag.item())
    return past


def cosine_schedule(optimizer, total_steps: int, warmup: int, budget_seconds: float | None = None):
    """Linear warm-up, then cosine decay to zero by the last step or, with a time budget,
    by the end of the budget, whichever comes first (so a timed run ends annealed)."""
    began = time.monotonic()

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        if budget_seconds:
            progress = max(progress, (time.monotonic() - began) / budget_seconds)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class PlateauSchedule(torch.optim.lr_scheduler.LambdaLR):
    """Linear warm-up over ``warmup`` steps, then the learning rate halves after every
    ``wait`` epochs in a row without a better validation score (report each epoch with
    :meth:`epoch_end`)."""

    def __init__(self, optimizer, warmup: int, wait: int, factor: float = 0.5):
        self.scale, self.wait, self.factor, self.stale = 1.0, max(1, wait), factor, 0
        super().__init__(optimizer, lambda step: min(1.0, (step + 1) / warmup) * self.scale)

    def epoch_end(self, improved: bool) -> None:
        self.stale = 0 if improved else self.stale + 1
        if self.stale and self.stale % self.wait == 0:
            self.scale *= self.factor


def cft_collate(items: Sequence[EncodedStructure], training: bool, rng: np.random.Generator | None) -> Batch:
    """The CFT's batches: one random origin frame per structure in training, all frames
    (to be averaged) otherwise."""
    return collate(items, frames="random" if training else "all", rng=rng)


def size_batches(sizes: Sequence[int], batch_size: int, spread: float = 1.5, slack: int = 8) -> list[np.ndarray]:
    """Indices of ``sizes`` in batches of at most ``batch_size`` items of alike sizes: in
    increasing size, a batch ends before an item larger than both ``spread`` times its
    smallest and its smallest plus ``slack``.  A batch is padded to its largest structure,
    so alike sizes pad little."""
    order = np.argsort(np.asarray(sizes), kind="stable")
    batches, first = [], 0
    for position in range(1, len(order) + 1):
        smallest = sizes[order[first]]
        if position == len(order) or position - first == batch_size or sizes[order[position]] > max(spread * smallest, smallest + slack):
            batches.append(order[first:position])
            first = position
    return batches


def shuffled_batches(order: np.ndarray, sizes: np.ndarray | None, batch_size: int, rng: np.random.Generator, pool: int = 16) -> list[np.ndarray]:
    """Training batches of the shuffled indices ``order``.  With ``sizes`` (atoms of every
    item, for padded models), each run of ``pool`` batches is sorted by size before it is cut
    and the batches are shuffled: batches keep random members of alike sizes, which pads
    less (an epoch of the CFT on elastic_tensor: 2x faster)."""
    if sizes is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    for start in range(0, len(order), pool * batch_size):
        run = order[start : start + pool * batch_size]
        run = run[np.argsort(sizes[run], kind="stable")]
        batches.extend(run[i : i + batch_size] for i in range(0, len(run), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


@torch.no_grad()
def predict_normalized(model: nn.Module, items: Sequence, device, batch_size: int = 32, collate_fn: Collate = cft_collate) -> np.ndarray:
    """(n,) model outputs, averaged over the sequences (frames) of each item, weighted by
    the batch's ``weight`` when it has one.  Items are batched by size (``n_atoms``, where
    they have it: :func:`size_batches`)."""
    model.eval()
    out = np.zeros(len(items))
    for chunk in size_batches([getattr(item, "n_atoms", 0) for item in items], batch_size):
        batch = collate_fn([items[i] for i in chunk], False, None).to(device)
        out[chunk] = average_over_frames(model(batch), batch.owner, len(chunk), getattr(batch, "weight", None)).cpu().numpy()
    return out


def evaluate_mae(model, items, targets: np.ndarray, mean: float, std: float, device, collate_fn: Collate = cft_collate) -> float:
    if not len(items):
        return float("nan")
    predictions = predict_normalized(model, items, device, collate_fn=collate_fn) * std + mean
    return float(np.abs(predictions - targets).mean())


def fit(
    model: nn.Module,
    train: Sequence,
    train_targets: np.ndarray,
    val: Sequence,
    val_targets: np.ndarray,
    config: TrainConfig,
    context: DistributedContext,
    on_best: Callable[[nn.Module, int, float], None] | None = None,
    collate_fn: Collate = cft_collate,
) -> dict:
    """Train on normalized targets with early stopping on validation MAE; returns the
    history and restores the best weights into ``model``.

    Any regressor fits that maps a batch to one output per sequence: ``collate_fn(items,
    training, rng)`` makes the batch (with ``.to(device)`` and ``.owner``, the item of each
    sequence).  For the CFT, each epoch sees one random origin frame per structure and
    validation averages over all frames."""
    from tqdm.auto import tqdm

    mean, std = float(np.mean(train_targets)), float(np.std(train_targets) or 1.0)
    normalized = (np.asarray(train_targets) - mean) / std
    wrapped = context.wrap(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    usable = len(train) - len(train) % context.world  # equal shards, or DDP ranks would wait on each other
    steps_per_epoch = max(1, math.ceil(usable // context.world / config.batch_size))
    budget = 60 * config.max_minutes if config.max_minutes else None
    warmup = min(100, steps_per_epoch)
    if budget is None:  # to convergence
        scheduler = PlateauSchedule(optimizer, warmup, wait=config.patience // 3)
    else:  # compute-matched: annealed by the end of the budget
        scheduler = cosine_schedule(optimizer, config.epochs * steps_per_epoch, warmup, budget_seconds=budget)
    rng = np.random.default_rng(config.seed)
    sizes = np.array([item.n_atoms for item in train]) if all(hasattr(item, "n_atoms") for item in train) else None
    best, best_epoch, history, start = math.inf, -1, [], time.monotonic()
    best_state = copy.deepcopy(model.state_dict())
    validation_seconds = 0.0  # of the last epoch: steps stop early enough to validate within the budget

    def steps_deadline() -> float | None:
        return None if budget is None else start + budget - validation_seconds

    for epoch in range(1, config.epochs + 1):
        wrapped.train()
        order = rng.permutation(len(train))[:usable][context.rank :: context.world]
        losses = []
        batches = shuffled_batches(order, sizes, config.batch_size, rng)
        steps_until = steps_deadline()
        out_of_time = False
        for index in tqdm(batches, desc=f"epoch {epoch}", disable=not context.main, leave=False, file=sys.stderr):
            if losses and _past(steps_until, context):  # the budget ends inside this epoch
                out_of_time = True
                break
            batch = collate_fn([train[i] for i in index], True, rng).to(context.device)
            target = torch.as_tensor(normalized[index], dtype=torch.float32, device=context.device)
            loss = nn.functional.smooth_l1_loss(wrapped(batch), target[batch.owner])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        validating = time.monotonic()
        val_mae = evaluate_mae(model, val, val_targets, mean, std, context.device, collate_fn)
        validation_seconds = time.monotonic() - validating
        history.append({"epoch": epoch, "steps": len(losses), "train_loss": float(np.mean(losses)), "val_mae": val_mae, "learning_rate": optimizer.param_groups[0]["lr"]})
        improved = val_mae < best
        if isinstance(scheduler, PlateauSchedule):
            scheduler.epoch_end(improved)
        if improved:
            best, best_epoch = val_mae, epoch
            best_state = copy.deepcopy(model.state_dict())
            if on_best is not None and context.main:
                on_best(model, epoch, val_mae)
        if context.main:
            print(f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}  val MAE {val_mae:.4f}{'  *' if improved else ''}", file=sys.stderr)
        out_of_time = out_of_time or _past(steps_deadline(), context)  # no time left for another step and its validation
        if epoch - best_epoch >= config.patience or out_of_time:
            if context.main:
                print(f"stopping after epoch {epoch}: " + ("time budget spent" if out_of_time else f"no improvement for {config.patience} epochs"), file=sys.stderr)
            break
    model.load_state_dict(best_state)
    return {"history": history, "best_epoch": best_epoch, "best_val_mae": best, "target_mean": mean, "target_std": std}
