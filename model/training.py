"""The one training engine: ``fit -> one epoch -> one step``, its schedules, time budget and DDP.

What is trained differs by *task* (:class:`Task`): :class:`Regression` predicts a property
of structures (``basisdb train``, ``basisdb evaluate``), :class:`basisdb.model.pretrain.OrbitDistances`
embeds positions so that distances are orbit distances (``basisdb pretrain``).  A task makes
the batches of an epoch, the loss of one batch and the validation score; the engine owns the
optimizer, the learning-rate schedule, gradient clipping, the time budget (checked at every
step), early stopping and the best weights.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from basisdb import BasisDBError

from .data import Batch, EncodedStructure, SizeGroups, collate
from .modules import segment_mean

Collate = Callable[[Sequence, bool, "np.random.Generator | None"], Any]

__all__ = [
    "TrainConfig",
    "DeviceError",
    "resolve_device",
    "available_devices",
    "DistributedContext",
    "Task",
    "Regression",
    "Normalization",
    "FitResult",
    "fit",
    "train_one_epoch",
    "take_step",
    "evaluate_mae",
    "cosine_schedule",
    "PlateauSchedule",
    "cft_collate",
    "collate_by_size",
    "predict_normalized",
    "frame_averaged",
    "atom_counts",
    "size_batches",
    "shuffled_batches",
]


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


class DeviceError(BasisDBError, ValueError):
    """A torch device that is unknown or not available on this machine."""


def available_devices() -> list[str]:
    """The devices this torch can use: ``cpu``, then ``cuda:0`` ... and ``mps`` where present."""
    found = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return found + (["mps"] if torch.backends.mps.is_available() else [])


def resolve_device(name: str | torch.device | None = None, local_rank: int = 0) -> torch.device:
    """The torch device ``name`` (cpu, cuda, cuda:1, mps), checked before any work starts;
    None: this rank's GPU when there is one, else the CPU.  Raises :class:`DeviceError`
    naming the device and the available ones."""
    if name is None:
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {str(name)!r}; available: {', '.join(available_devices())}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no GPU is visible"
            raise DeviceError(
                f"device {str(name)!r} is not available ({why}, torch {torch.__version__}); "
                f"available: {', '.join(available_devices())}"
            )
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"device {str(name)!r} is not available: {count} GPU(s) visible; "
                f"available: {', '.join(available_devices())}"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(name)!r} is not available; available: {', '.join(available_devices())}")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {str(name)!r} is not supported; available: {', '.join(available_devices())}")
    return device


class DistributedContext:
    """torchrun's environment: one process per rank (gloo on CPU, NCCL on GPUs); a single
    process otherwise.  The device is checked first (:func:`resolve_device`)."""

    def __init__(self, device: str | None = None):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.world > 1:
            return nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
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


def cft_collate(
    items: Sequence[EncodedStructure], training: bool, rng: np.random.Generator | None
) -> Batch | SizeGroups:
    """The CFT's batches: one random origin frame per structure in training, all frames
    (to be averaged) otherwise.  A batch of unlike sizes comes in parts of alike sizes
    (:class:`SizeGroups`: the same outputs, with less padding): training batches; prediction
    batches are made of alike sizes already (:func:`predict_normalized`), so they come whole.  On
    elastic_tensor, training batches padded whole to their largest structure held 3.2x the
    atom pairs the structures have, which attention and the pair profiles pay for."""
    return collate_by_size(items, frames="random" if training else "all", rng=rng)


def collate_by_size(
    items: Sequence[EncodedStructure], frames: str = "all", rng: np.random.Generator | None = None
) -> Batch | SizeGroups:
    """:func:`collate` in parts of alike sizes (:func:`size_batches`), each padded to its own
    largest structure; one :class:`Batch` where the sizes are alike already."""
    groups = size_batches([item.n_atoms for item in items], len(items))
    if len(groups) == 1:
        return collate(items, frames=frames, rng=rng)
    return SizeGroups.of([(group, collate([items[i] for i in group], frames=frames, rng=rng)) for group in groups])


def size_batches(sizes: Sequence[int], batch_size: int, spread: float = 1.5, slack: int = 8) -> list[np.ndarray]:
    """Indices of ``sizes`` in batches of at most ``batch_size`` items of alike sizes: in
    increasing size, a batch ends before an item larger than both ``spread`` times its
    smallest and its smallest plus ``slack``.  A batch is padded to its largest structure,
    so alike sizes pad little."""
    order = np.argsort(np.asarray(sizes), kind="stable")
    batches, first = [], 0
    for position in range(1, len(order) + 1):
        smallest = sizes[order[first]]
        if (
            position == len(order)
            or position - first == batch_size
            or sizes[order[position]] > max(spread * smallest, smallest + slack)
        ):
            batches.append(order[first:position])
            first = position
    return batches


def shuffled_batches(
    order: np.ndarray, sizes: np.ndarray | None, batch_size: int, rng: np.random.Generator, pool: int = 16
) -> list[np.ndarray]:
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


def atom_counts(items: Sequence) -> np.ndarray | None:
    """(n,) atoms of each item, for batching items of alike sizes; None for items without an
    ``n_atoms`` (the CGCNN's graphs, which are not padded)."""
    if not all(hasattr(item, "n_atoms") for item in items):
        return None
    return np.array([item.n_atoms for item in items], dtype=np.int64)


def frame_averaged(model: nn.Module, batch, n_items: int) -> torch.Tensor:
    """(n_items,) the model's outputs for ``batch`` averaged over the sequences (frames) of
    each item, weighted by the batch's ``weight`` when it has one: the prediction."""
    return segment_mean(model(batch), batch.owner, n_items, getattr(batch, "weight", None))


@torch.no_grad()
def predict_normalized(
    model: nn.Module, items: Sequence, device, batch_size: int = 32, collate_fn: Collate = cft_collate
) -> np.ndarray:
    """(n,) model outputs, averaged over the sequences (frames) of each item, weighted by
    the batch's ``weight`` when it has one.  Items are batched by size where they have one
    (:func:`atom_counts`, :func:`size_batches`), in order otherwise."""
    model.eval()
    out = np.zeros(len(items))
    sizes = atom_counts(items)
    for chunk in size_batches(np.zeros(len(items), dtype=np.int64) if sizes is None else sizes, batch_size):
        batch = collate_fn([items[i] for i in chunk], False, None).to(device)
        out[chunk] = frame_averaged(model, batch, len(chunk)).cpu().numpy()
    return out


def evaluate_mae(
    model, items, targets: np.ndarray, mean: float, std: float, device, collate_fn: Collate = cft_collate
) -> float:
    if not len(items):
        return float("nan")
    predictions = predict_normalized(model, items, device, collate_fn=collate_fn) * std + mean
    return float(np.abs(predictions - targets).mean())


@dataclass(frozen=True)
class Normalization:
    """Targets are learnt as ``(y - mean) / std``, with the training targets' mean and
    standard deviation (1 where they are all equal)."""

    mean: float
    std: float

    @classmethod
    def of(cls, targets: np.ndarray) -> Normalization:
        return cls(float(np.mean(targets)), float(np.std(targets) or 1.0))

    def normalize(self, targets: np.ndarray) -> np.ndarray:
        return (np.asarray(targets) - self.mean) / self.std

    def restore(self, outputs: np.ndarray) -> np.ndarray:
        return outputs * self.std + self.mean


class Task(Protocol):
    """What :func:`fit` trains on: the batches of an epoch, the loss of one and the score
    that selects the best weights (lower is better, an MAE)."""

    def steps_per_epoch(self, batch_size: int, context: DistributedContext) -> int:
        """Steps of one epoch on this rank (the schedules are set from it)."""

    def epoch_batches(self, rng: np.random.Generator, batch_size: int, context: DistributedContext) -> Sequence:
        """This rank's batches of the next epoch, one per step, in order; each is handed to
        :meth:`loss`."""

    def loss(self, model: nn.Module, batch, rng: np.random.Generator, device: torch.device) -> torch.Tensor:
        """The scalar loss of one batch, in training mode."""

    def validate(self, model: nn.Module, device: torch.device) -> float:
        """The validation score of the current weights."""


class Regression:
    """A property of structures, learnt on normalized targets (:class:`Normalization`, the
    one source of a checkpoint's ``target_mean`` and ``target_std``) with a smooth L1 loss
    and validated by MAE in target units.

    Any regressor fits that maps a batch to one output per sequence: ``collate_fn(items,
    training, rng)`` makes the batch (with ``.to(device)`` and ``.owner``, the item of each
    sequence).  For the CFT, each epoch sees one random origin frame per structure; validation
    averages over all frames.  Under DDP every rank takes an equal shard of each epoch's
    shuffled items."""

    def __init__(
        self,
        train: Sequence,
        train_targets: np.ndarray,
        val: Sequence,
        val_targets: np.ndarray,
        collate_fn: Collate = cft_collate,
    ):
        self.train, self.val, self.val_targets, self.collate_fn = train, val, val_targets, collate_fn
        self.normalization = Normalization.of(train_targets)
        self._targets = self.normalization.normalize(train_targets)
        self._sizes = atom_counts(train)

    def _usable(self, context: DistributedContext) -> int:
        return len(self.train) - len(self.train) % context.world  # equal shards, or DDP ranks would wait on each other

    def steps_per_epoch(self, batch_size: int, context: DistributedContext) -> int:
        return max(1, math.ceil(self._usable(context) // context.world / batch_size))

    def epoch_batches(self, rng: np.random.Generator, batch_size: int, context: DistributedContext) -> list[np.ndarray]:
        order = rng.permutation(len(self.train))[: self._usable(context)][context.rank :: context.world]
        return shuffled_batches(order, self._sizes, batch_size, rng)

    def loss(self, model: nn.Module, batch: np.ndarray, rng: np.random.Generator, device: torch.device) -> torch.Tensor:
        target = torch.as_tensor(self._targets[batch], dtype=torch.float32, device=device)
        inputs = self.collate_fn([self.train[i] for i in batch], True, rng).to(device)
        return nn.functional.smooth_l1_loss(model(inputs), target[inputs.owner])

    def validate(self, model: nn.Module, device: torch.device) -> float:
        return evaluate_mae(
            model, self.val, self.val_targets, self.normalization.mean, self.normalization.std, device, self.collate_fn
        )


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did.

    Attributes:
        history: one entry per epoch: epoch, steps, train_loss (mean over its steps),
            val_mae, learning_rate (at its end).
        best_epoch, best_val_mae: the epoch whose weights the model holds after the fit.
        stopped: why it stopped: ``"budget"`` (the time budget was spent), ``"patience"``
            (no better validation score for ``patience`` epochs) or ``"epochs"`` (the cap).
        steps: optimizer steps in all; seconds: wall time of the fit.
    """

    history: list[dict]
    best_epoch: int
    best_val_mae: float
    stopped: str
    steps: int
    seconds: float


def take_step(loss: torch.Tensor, parameters: list[nn.Parameter], optimizer, scheduler) -> float:
    """One optimizer step on ``loss``, gradients clipped to norm 5; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(parameters, 5.0)
    optimizer.step()
    scheduler.step()
    return loss.item()


def train_one_epoch(
    wrapped: nn.Module,
    model: nn.Module,
    task: Task,
    batches: Sequence,
    optimizer,
    scheduler,
    rng: np.random.Generator,
    context: DistributedContext,
    deadline: float | None,
    description: str,
) -> tuple[list[float], bool]:
    """The steps of one epoch; returns their losses and whether the time budget ended it
    (checked before every step but the first, so that every epoch takes a step)."""
    from tqdm.auto import tqdm

    wrapped.train()
    losses: list[float] = []
    parameters = list(model.parameters())
    for batch in tqdm(batches, desc=description, disable=not context.main, leave=False, file=sys.stderr):
        if losses and _past(deadline, context):  # the budget ends inside this epoch
            return losses, True
        losses.append(take_step(task.loss(wrapped, batch, rng, context.device), parameters, optimizer, scheduler))
    return losses, False


def fit(
    model: nn.Module,
    task: Task,
    config: TrainConfig,
    context: DistributedContext,
    on_best: Callable[[nn.Module, int, float], None] | None = None,
    started: float | None = None,
) -> FitResult:
    """Train ``model`` on ``task`` and restore the weights of its best validation score.

    Two protocols (:class:`TrainConfig`): to convergence, with the learning rate halving
    on plateaus and early stopping after ``patience`` epochs; or compute-matched, within
    ``max_minutes`` of wall time counted from ``started`` (a ``time.monotonic()``; default:
    now), with a cosine schedule ending at the budget.  The budget is checked before every
    step; an epoch's steps stop early enough to validate within it.  ``on_best(model,
    epoch, score)`` runs (on the main rank) at every better validation score."""
    start = time.monotonic() if started is None else started
    wrapped = context.wrap(model)
    # fused: one kernel updates every parameter; per-parameter updates took 14% of a CFT step on a CPU
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    steps_per_epoch = task.steps_per_epoch(config.batch_size, context)
    budget = 60 * config.max_minutes if config.max_minutes else None
    warmup = min(100, steps_per_epoch)
    if budget is None:  # to convergence
        scheduler = PlateauSchedule(optimizer, warmup, wait=config.patience // 3)
    else:  # compute-matched: annealed by the end of the budget
        remaining = max(1e-3, start + budget - time.monotonic())
        scheduler = cosine_schedule(optimizer, config.epochs * steps_per_epoch, warmup, budget_seconds=remaining)
    rng = np.random.default_rng(config.seed)
    best, best_epoch, history, steps, stopped = math.inf, -1, [], 0, "epochs"
    best_state = copy.deepcopy(model.state_dict())
    validation_seconds = 0.0  # of the last epoch: steps stop early enough to validate within the budget

    def steps_deadline() -> float | None:
        return None if budget is None else start + budget - validation_seconds

    for epoch in range(1, config.epochs + 1):
        batches = task.epoch_batches(rng, config.batch_size, context)
        losses, out_of_time = train_one_epoch(
            wrapped,
            model,
            task,
            batches,
            optimizer,
            scheduler,
            rng,
            context,
            steps_deadline(),
            f"epoch {epoch}",
        )
        steps += len(losses)
        validating = time.monotonic()
        val_mae = task.validate(model, context.device)
        validation_seconds = time.monotonic() - validating
        history.append(
            {
                "epoch": epoch,
                "steps": len(losses),
                "train_loss": float(np.mean(losses)),
                "val_mae": val_mae,
                "learning_rate": optimizer.param_groups[0]["lr"],
            }
        )
        improved = val_mae < best
        if isinstance(scheduler, PlateauSchedule):
            scheduler.epoch_end(improved)
        if improved:
            best, best_epoch = val_mae, epoch
            best_state = copy.deepcopy(model.state_dict())
            if on_best is not None and context.main:
                on_best(model, epoch, val_mae)
        if context.main:
            print(
                f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}  val MAE {val_mae:.4f}{'  *' if improved else ''}",
                file=sys.stderr,
            )
        out_of_time = out_of_time or _past(
            steps_deadline(), context
        )  # no time left for another step and its validation
        if epoch - best_epoch >= config.patience or out_of_time:
            stopped = "budget" if out_of_time else "patience"
            if context.main:
                print(
                    f"stopping after epoch {epoch}: "
                    + ("time budget spent" if out_of_time else f"no improvement for {config.patience} epochs"),
                    file=sys.stderr,
                )
            break
    model.load_state_dict(best_state)
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best_val_mae=best,
        stopped=stopped,
        steps=steps,
        seconds=time.monotonic() - start,
    )
