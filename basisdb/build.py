"""The offline builder: every requested setting at every radius, verified, written atomically.

Each setting is built once, at the largest radius; the smaller radii are prefixes of it, so
their verification figures come from the same evaluation.  Work is spread over a local
process pool (the default) or a Dask distributed cluster (``scheduler=ADDRESS``).  This is
the library; the ``basisdb build`` command around it is :mod:`basisdb.commands`.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checks import DEFAULT_POINTS, DEFAULT_SEED, TOLERANCE, figures_by_radius, random_points
from .construction import build_basis_for_setting
from .errors import BasisDBError, BuildInterrupted, ConstructionError, InvalidHallNumberError
from .frequencies import max_norm
from .ranges import parse_number_ranges
from .settings import N_GROUPS, N_HALL_NUMBERS, default_hall_number, get_setting
from .store_format import VERIFICATION_DTYPE, VERIFICATION_FIELDS, FamilyRecord, default_store_path
from .writer import StoreWriter

__all__ = [
    "DEFAULT_RADII",
    "BuildReport",
    "StopRequest",
    "build_family",
    "build_store",
    "parse_settings",
    "summary_rows",
    "format_table",
]

DEFAULT_RADII: tuple[float, ...] = (2, 3, 4, 6, 8, 12, 16)
_ERROR_FIGURES = tuple(name for name, _ in VERIFICATION_FIELDS if name.endswith("_error"))


def build_family(
    hall: int, radii: Sequence[float], n_points: int = DEFAULT_POINTS, seed: int = DEFAULT_SEED
) -> FamilyRecord:
    """Build and verify one setting at ``max(radii)``, with figures for every radius."""
    radii = sorted(float(r) for r in radii)
    basis = build_basis_for_setting(get_setting(hall=hall), radii[-1])
    figures = figures_by_radius(basis, radii, random_points(n_points, seed))
    table = np.array([tuple(f[name] for name, _ in VERIFICATION_FIELDS) for f in figures], dtype=VERIFICATION_DTYPE)
    worst = {name: float(table[name].max()) for name in _ERROR_FIGURES}
    if max(worst.values()) > TOLERANCE:
        raise ConstructionError(
            f"Hall setting {hall} ({basis.hall_symbol}) failed verification: {worst} (tolerance {TOLERANCE})"
        )
    # A fresh instance drops the cached matrices, so only the exact arrays travel back.
    return FamilyRecord(basis=dataclasses.replace(basis), verification=table)


def parse_settings(spec: str | Iterable[int]) -> list[int]:
    """Hall numbers from ``"default"`` (230), ``"all"`` (530), or a list such as
    ``"1-30,525"`` (Hall numbers and inclusive ranges)."""
    if spec == "default":
        return [default_hall_number(g) for g in range(1, N_GROUPS + 1)]
    if spec == "all":
        return list(range(1, N_HALL_NUMBERS + 1))
    if isinstance(spec, str):
        try:
            halls = parse_number_ranges(spec, upper=N_HALL_NUMBERS, out_of_range=InvalidHallNumberError)
        except InvalidHallNumberError as exc:
            raise InvalidHallNumberError(f"Hall numbers must lie in 1-{N_HALL_NUMBERS}: {exc}") from None
        except ValueError as exc:
            raise InvalidHallNumberError(f"settings: {exc}; or use 'default' or 'all'") from None
    else:
        halls = sorted({int(h) for h in spec})
    bad = [h for h in halls if not 1 <= h <= N_HALL_NUMBERS]
    if bad or not halls:
        raise InvalidHallNumberError(
            f"Hall numbers must lie in 1-{N_HALL_NUMBERS}; got {bad[:10] or 'none'} in {spec!r}"
        )
    return halls


@dataclass(frozen=True)
class BuildReport:
    """What a build produced: the file, its fingerprint, timing and per-radius totals.

    Attributes:
        path: the store written.
        seconds: wall time of the build.
        n_settings: number of settings written.
        radii: the radii, ascending.
        summary: one dict per radius (see :func:`summary_rows`).
        fingerprint: the store's content fingerprint.
    """

    path: Path
    seconds: float
    n_settings: int
    radii: tuple[float, ...]
    summary: tuple[dict, ...]
    fingerprint: str

    def format_summary(self) -> str:
        """The table of :attr:`summary` plus a footer naming the file, its size, fingerprint
        and build time."""
        size_mb = self.path.stat().st_size / 1e6
        return "\n".join(
            [
                format_table(self.summary),
                "",
                f"{self.n_settings} settings x {len(self.radii)} radii verified (tolerance "
                f"{TOLERANCE:g}) in {self.seconds:.1f} s",
                f"store: {self.path} ({size_mb:.1f} MB), fingerprint {self.fingerprint[:16]}",
            ]
        )


@dataclass
class StopRequest:
    """A request to stop a build between two settings, made from outside it (a signal
    handler: :func:`basisdb.commands.stop_on_signals`, or another thread).

    Attributes:
        signal_number: the signal that asked for the stop; 0 while none has.
    """

    signal_number: int = 0

    @property
    def requested(self) -> bool:
        return self.signal_number != 0

    def check(self, out: Path) -> None:
        """Raise :class:`BuildInterrupted` if a stop was requested."""
        if self.requested:
            raise BuildInterrupted(
                f"build stopped by signal {signal.Signals(self.signal_number).name}; {out} was left as it was",
                signal_number=self.signal_number,
            )


def _local_results(halls, radii, n_points, seed, workers) -> Iterator[FamilyRecord]:
    if workers == 1:
        for hall in halls:
            yield build_family(hall, radii, n_points, seed)
        return
    # Spawned, not forked: the workers start while the store being written is open, and a
    # forked child holds copies of its HDF5 handles, which it can close (flushing metadata
    # into the parent's file) when its garbage collector frees them.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(build_family, h, radii, n_points, seed) for h in halls]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _dask_results(halls, radii, n_points, seed, scheduler) -> Iterator[FamilyRecord]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise BasisDBError("--scheduler needs Dask distributed: pip install 'basisdb[distributed]'") from None
    with Client(scheduler) as client:
        futures = client.map(build_family, halls, radii=radii, n_points=n_points, seed=seed, pure=False)
        try:
            for future in dask_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)


def build_store(
    out: str | os.PathLike | None = None,
    *,
    radii: Sequence[float] = DEFAULT_RADII,
    settings: str | Iterable[int] = "default",
    workers: int | None = None,
    scheduler: str | None = None,
    n_points: int = DEFAULT_POINTS,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
    stop: StopRequest | None = None,
) -> BuildReport:
    """Build, verify and atomically write a store; return what was built.

    Args:
        out: output path (default: :func:`basisdb.default_store_path`).
        radii: truncation radii.
        settings: ``"default"`` (the 230 default settings), ``"all"`` (530), a spec such as
            ``"1-30,525"`` or an iterable of Hall numbers.
        workers: local processes (default: all cores); 1 builds in this process.
        scheduler: address of a Dask distributed scheduler; overrides ``workers``.
        n_points, seed: random points of the invariance check.
        progress: show a progress bar on stderr.
        stop: checked between two settings; once requested, the build raises
            :class:`BuildInterrupted` and the file at ``out`` stays as it was.
    """
    stop = stop if stop is not None else StopRequest()
    start = time.perf_counter()
    out = Path(out) if out is not None else default_store_path()
    radii = sorted({float(r) for r in radii})
    if not radii:
        raise BasisDBError("give at least one radius")
    for r in radii:
        max_norm(r)
    halls = parse_settings(settings)
    # Largest settings first, so that no worker is left with a big one at the end.
    halls.sort(key=lambda h: -get_setting(hall=h).n_operations)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise BasisDBError(f"workers must be at least 1, got {workers}")
    results = (
        _dask_results(halls, radii, n_points, seed, scheduler)
        if scheduler
        else _local_results(halls, radii, n_points, seed, workers)
    )
    from tqdm.auto import tqdm

    tables: dict[int, np.ndarray] = {}
    with StoreWriter(out, radii=radii, verification_points=n_points, verification_seed=seed) as writer:
        bar = tqdm(total=len(halls), desc="building settings", unit="setting", disable=not progress, file=sys.stderr)
        with bar:
            for record in results:
                writer.add_family(record)
                tables[record.basis.hall_number] = record.verification
                bar.set_postfix_str(f"{record.basis.international} (Hall {record.basis.hall_number})", refresh=False)
                bar.update()
                stop.check(out)
        stop.check(out)
        writer.commit()
    return BuildReport(
        path=out,
        seconds=time.perf_counter() - start,
        n_settings=len(halls),
        radii=tuple(radii),
        summary=tuple(summary_rows(tables, radii)),
        fingerprint=writer.fingerprint,
    )


def summary_rows(tables: dict[int, np.ndarray], radii: Sequence[float]) -> list[dict]:
    """Per-radius totals over settings: sizes and worst verification errors."""
    stacked = np.stack([tables[h] for h in sorted(tables)])  # (n_settings, n_radii)
    rows = []
    for i, radius in enumerate(radii):
        column = stacked[:, i]
        rows.append(
            {
                "radius": radius,
                "settings": int(column.shape[0]),
                "max_frequencies": int(column["n_frequencies"].max()),
                "basis_min": int(column["n_basis"].min()),
                "basis_median": float(np.median(column["n_basis"])),
                "basis_max": int(column["n_basis"].max()),
                "basis_total": int(column["n_basis"].sum()),
                **{name: float(column[name].max()) for name in _ERROR_FIGURES},
            }
        )
    return rows


def format_table(summary: Sequence[dict]) -> str:
    """Plain-text table of :func:`summary_rows`."""
    header = ("radius", "settings", "K max", "n_basis min", "median", "max", "total", "max inv. err", "max orth. err")
    lines = [header]
    for row in summary:
        lines.append(
            (
                f"{row['radius']:g}",
                str(row["settings"]),
                str(row["max_frequencies"]),
                str(row["basis_min"]),
                f"{row['basis_median']:g}",
                str(row["basis_max"]),
                str(row["basis_total"]),
                f"{row['invariance_error']:.1e}",
                f"{max(row['orthogonality_error'], row['real_orthogonality_error']):.1e}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)
