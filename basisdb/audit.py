"""Whole-store verification: what ``python -m basisdb verify PATH`` runs.

It trusts nothing in the file: every dataset's sha256 and the manifest fingerprint are
recomputed, every setting's invariance and orthogonality are re-evaluated at fresh random
points, and every routing is compared with a fresh exact construction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checks import DEFAULT_POINTS, TOLERANCE, figures_by_radius, random_points
from .construction import build_basis_for_setting
from .errors import BasisDBError
from .store import BasisStore

__all__ = ["AuditReport", "audit_store"]

# Different points from the build's, so the audit is not a replay of it.
_AUDIT_SEED = 7


@dataclass(frozen=True)
class AuditReport:
    """Outcome of :func:`audit_store`.

    Attributes:
        path: the file checked.
        n_datasets: datasets whose checksum was recomputed.
        n_settings: settings re-verified.
        worst: largest recomputed error of each kind, over all settings and radii.
        failures: one line per problem found; empty when the store is sound.
    """

    path: Path
    n_datasets: int
    n_settings: int
    worst: dict[str, float] = field(default_factory=dict)
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


def audit_store(
    path: str | os.PathLike,
    *,
    n_points: int = DEFAULT_POINTS,
    seed: int = _AUDIT_SEED,
    progress: bool = True,
) -> AuditReport:
    """Recompute checksums, invariance and orthogonality of every setting in a store."""
    path = Path(path)
    worst: dict[str, float] = {}
    points = random_points(n_points, seed)
    from tqdm.auto import tqdm

    with BasisStore(path) as store:
        n_datasets = len(store.checksums)
        failures = store.verify_checksums()
        halls = store.hall_numbers
        for hall in tqdm(halls, desc="verifying settings", unit="setting", disable=not progress):
            try:
                family = store.basis(hall=hall, radius=store.radii[-1])
                table = store.verification_table(hall=hall)
            except BasisDBError as exc:
                failures.append(f"Hall {hall}: {exc}")
                continue
            name = f"Hall {hall} ({family.hall_symbol})"
            figures = figures_by_radius(family, list(store.radii), points)
            for stored, fresh in zip(table, figures):
                for key in ("n_frequencies", "n_basis", "n_absent"):
                    if int(stored[key]) != fresh[key]:
                        failures.append(
                            f"{name} r={fresh['radius']:g}: stored {key} {int(stored[key])}, recomputed {fresh[key]}"
                        )
                for key, value in fresh.items():
                    if key.endswith("_error"):
                        worst[key] = max(worst.get(key, 0.0), value)
                        if value > TOLERANCE:
                            failures.append(f"{name} r={fresh['radius']:g}: {key} {value:.2e} > {TOLERANCE:g}")
            reference = build_basis_for_setting(family.setting, family.radius)
            for key in ("column_row", "column_phase", "orbit_sizes", "real_partner"):
                if not np.array_equal(getattr(family, key), getattr(reference, key)):
                    failures.append(f"{name}: {key} differs from a fresh exact construction")
            for key in ("column_value", "real_factor"):
                if not np.allclose(getattr(family, key), getattr(reference, key), rtol=0, atol=1e-15):
                    failures.append(f"{name}: {key} differs from a fresh exact construction")
    return AuditReport(path=path, n_datasets=n_datasets, n_settings=len(halls), worst=worst, failures=tuple(failures))
