"""How close can any Euclidean embedding come to the orbit distance?  A floor for the
orbit-distance pretraining's held-out ratio (MAE over mean distance).

Pretraining asks the positional encoder for embeddings whose Euclidean distance is the orbit
distance d_G(x1, x2).  That metric lives on a flat torus (folded by the group), and a flat
torus is not a subset of Euclidean space: on a circle of circumference 1, no map into any
Euclidean space keeps every distance (the chord of a half-turn is shorter than the arc).  So
the ratio has a floor above zero that no encoder, however large or long trained, goes below.

This script estimates it.  For each space group it draws one random lattice and ``--points``
random points as pretraining does (:func:`basisdb.model.geometry.random_lattice`, uniform
fractional coordinates), computes the exact orbit distance of every pair, and fits a *free*
embedding: one unconstrained ``--dim``-vector per point (128, the encoder's output width),
chosen to minimize the mean absolute error over all pairs (Adam, all groups at once).  A
free embedding is at least as good on these points as any encoder, which must map every
point of every lattice through one network; the result is therefore an optimistic floor
(the optimizer may stop above the true optimum, and more points or more width move it
little: see ``--points`` and ``--dim``).  The naive baseline, measured in the same run, is
the Cartesian position itself (distance |(x1 - x2) L|, no periodicity, no symmetry).

The ratio is pooled as pretraining's ``metrics.json`` pools it: all pairs' absolute errors
over all pairs' distances, overall and per crystal system.

With ``--readout squared`` the embedding states the orbit distance as its squared Euclidean
distance (``basisdb pretrain --readout squared``).  The square root of a torus's distance
nearly embeds: on a circle it embeds exactly (a helix-like curve in infinitely many
dimensions), so this readout's floor is a few times lower.

With ``--distance rounded`` the target is the reference implementation's orbit distance,
whose minimum image rounds each fractional coordinate (MISSION.md, fault 3): the quantity
that implementation trains and scores on.  The encoder's column (``--encoder-metrics``, by
default the shipped encoder's) is measured on the exact distance either way.

    python benchmarks/embedding_floor.py [--groups 1-230] [--points 128] [--dim 128] [--steps 1000]
        [--readout squared] [--distance rounded]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from basisdb import get_setting
from basisdb.model.cli import CRYSTAL_SYSTEMS, parse_groups
from basisdb.model.geometry import orbit_distance, random_lattice
from basisdb.model.pretrain import READOUTS, read_out

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "benchmarks" / "results" / "pretraining" / "orbit-distance-fresh" / "metrics.json"
PAPER_RATIO = 0.037


def rounded_orbit_distance(setting, lattice: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """(P,) the orbit distance as the published reference implementation computes it: each
    fractional coordinate of the difference rounded into [-1/2, 1/2] before the Cartesian
    norm, which is the minimum image only in orthogonal cells and overestimates it in skewed
    ones (MISSION.md, fault 3)."""
    images = np.einsum("oij,pj->poi", setting.rotations.astype(np.float64), x2) + setting.fractional_translations
    delta = x1[:, None, :] - images
    delta -= np.rint(delta)
    return np.linalg.norm(delta @ lattice, axis=-1).min(axis=1)


DISTANCES = {"exact": orbit_distance, "rounded": rounded_orbit_distance}


def draw(
    groups: list[int], points: int, seed: int, distance: str = "exact"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(G, P, P) orbit distances (``distance``: a key of :data:`DISTANCES`) and (G, P, P)
    Cartesian distances of ``points`` random points on one random lattice per group; the
    groups' crystal systems."""
    rng = np.random.default_rng(seed)
    first, second = np.triu_indices(points, 1)
    orbit = np.zeros((len(groups), points, points))
    cartesian = np.zeros_like(orbit)
    systems = []
    for g, group in enumerate(groups):  # one lattice per group; the pairs of a group are one call
        setting = get_setting(group)
        lattice = random_lattice(setting, rng)
        x = rng.random((points, 3))
        orbit[g, first, second] = DISTANCES[distance](setting, lattice, x[first], x[second])
        cartesian[g, first, second] = np.linalg.norm((x[first] - x[second]) @ lattice, axis=1)
        systems.append(setting.crystal_system)
    return orbit + orbit.transpose(0, 2, 1), cartesian + cartesian.transpose(0, 2, 1), systems


def pairwise(embedding: torch.Tensor, readout: str) -> torch.Tensor:
    """(G, P, P) the distances each group's (P, dim) embedding states between its rows: their
    Euclidean distance, or its square (``readout``, as in :func:`basisdb.model.pretrain.embedding_distance`)."""
    norms = (embedding**2).sum(-1)
    squared = norms[:, :, None] + norms[:, None, :] - 2 * embedding @ embedding.transpose(1, 2)
    return read_out(squared.clamp_min(0.0), readout)  # the Gram form can round below zero


def free_embedding_errors(distance: np.ndarray, dim: int, steps: int, seed: int, readout: str) -> np.ndarray:
    """(G, P, P) absolute errors of the best free embedding found for each group's distances."""
    torch.manual_seed(seed)
    target = torch.as_tensor(distance)
    groups, points, _ = target.shape
    upper = torch.triu(torch.ones(points, points, dtype=torch.bool), 1)
    # A start at the scale of the distances: random points as far apart as the orbit's typical pair
    scale = target[:, upper].mean(1)[:, None, None]
    scale = (scale.sqrt() if readout == "squared" else scale) / np.sqrt(2 * dim)
    embedding = (torch.randn(groups, points, dim, dtype=torch.float64) * scale).requires_grad_(True)
    optimizer = torch.optim.Adam([embedding], lr=0.02)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    pairs = target[:, upper]  # (G, pairs i < j)
    per_group = pairs.sum(1)  # each group's MAE relative to its own distances: alike weights
    for _ in range(steps):
        loss = ((pairwise(embedding, readout)[:, upper] - pairs).abs().sum(1) / per_group).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        return (pairwise(embedding, readout) - target).abs().numpy()


def pooled_ratio(errors: np.ndarray, distance: np.ndarray, chosen: np.ndarray) -> float:
    """Sum of absolute errors over sum of distances, over the pairs (i < j) of the chosen groups."""
    upper = np.triu(np.ones(distance.shape[1:], dtype=bool), 1)
    return float(errors[chosen][:, upper].sum() / distance[chosen][:, upper].sum())


def shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it, so that outputs do not
    carry one machine's directories."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=parse_groups, default=list(range(1, 231)))
    parser.add_argument("--points", type=int, default=128, help="random points per group (pairs: all of theirs)")
    parser.add_argument("--dim", type=int, default=128, help="width of the free embedding (the encoder's: 128)")
    parser.add_argument("--steps", type=int, default=1000, help="Adam steps (cosine schedule to zero)")
    parser.add_argument(
        "--distance",
        choices=tuple(DISTANCES),
        default="exact",
        help="exact: the orbit distance pretraining learns; rounded: the reference implementation's "
        "per-coordinate rounding, the target of the paper's ratio (default: %(default)s)",
    )
    parser.add_argument(
        "--readout",
        choices=READOUTS,
        default="distance",
        help="what the embedding states as the orbit distance: the Euclidean distance (the paper's task) or its "
        "square, as `basisdb pretrain --readout` (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--encoder-metrics",
        type=Path,
        default=SHIPPED,
        help="metrics.json of a pretrained encoder, for its held-out ratios beside the floor "
        "(default: the shipped encoder's)",
    )
    parser.add_argument("--out", type=Path, help="write the ratios here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    orbit, cartesian, systems = draw(args.groups, args.points, args.seed, args.distance)
    drawn = time.perf_counter() - began
    errors = free_embedding_errors(orbit, args.dim, args.steps, args.seed, args.readout)
    fitted = time.perf_counter() - began - drawn
    systems = np.array(systems)
    encoder = json.loads(args.encoder_metrics.read_text()) if args.encoder_metrics.exists() else None
    pairs = args.points * (args.points - 1) // 2
    print(
        f"{args.distance} orbit distances; {len(args.groups)} groups, one random lattice each, {args.points} points "
        f"({pairs} pairs) per group; free embedding of width {args.dim}, readout {args.readout}, "
        f"{args.steps} Adam steps (drawing {drawn:.0f} s, fitting {fitted:.0f} s, {args.threads} thread(s))"
    )
    if encoder is not None:
        print(f"encoder: {shown(args.encoder_metrics)} (readout {encoder.get('readout', 'distance')})")
    header = ("MAE / mean distance", "groups", "Cartesian (naive)", "free embedding", "encoder")
    print(f"{header[0]:20s} {header[1]:>6s} {header[2]:>18s} {header[3]:>15s} {header[4]:>10s}")
    rows = {}
    for name in ("overall", *CRYSTAL_SYSTEMS):
        chosen = np.ones(len(systems), dtype=bool) if name == "overall" else systems == name
        if not chosen.any():
            continue
        naive = pooled_ratio(np.abs(cartesian - orbit), orbit, chosen)
        floor = pooled_ratio(errors, orbit, chosen)
        measured = None
        if encoder is not None:
            part = encoder["overall"] if name == "overall" else encoder["per_crystal_system"].get(name)
            measured = part and part["mae_over_mean_distance"]
        rows[name] = {"groups": int(chosen.sum()), "cartesian": naive, "free_embedding": floor, "encoder": measured}
        print(
            f"{name:20s} {int(chosen.sum()):6d} {naive:18.4f} {floor:15.4f} "
            f"{'' if measured is None else f'{measured:10.4f}'}"
        )
    print(f"the paper's held-out ratio: {PAPER_RATIO}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        arguments = {key: value for key, value in vars(args).items() if key != "out"}
        arguments["encoder_metrics"] = shown(args.encoder_metrics)
        args.out.write_text(json.dumps({"arguments": arguments, "ratios": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
