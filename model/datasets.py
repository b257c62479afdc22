"""Built-in Materials Project datasets, read offline from the matminer 0.4.2 source distribution.

The sdist on PyPI bundles CSV files of three Materials Project studies.  ``fetch`` downloads it
once with ``pip download`` into the cache directory and checks its sha256; everything after
that reads the CSVs straight out of the tarball, with no network and without installing that
old matminer (its loaders no longer run on current pandas and pymatgen).

Data: Materials Project (A. Jain et al., APL Mater. 1, 011002, 2013), and

- ``flla_2015``: F. Faber, A. Lindmaa, O. A. von Lilienfeld, R. Armiento, Int. J. Quantum
  Chem. 115, 1094 (2015); 3,938 structures, formation energy per atom (eV/atom).
- ``elastic_tensor``: M. de Jong et al., Sci. Data 2, 150009 (2015); 1,181 structures,
  Voigt-Reuss-Hill bulk and shear moduli (GPa).  Train on ``log10_K_VRH`` / ``log10_G_VRH``,
  as matbench does.
- ``dielectric_constant``: I. Petousis et al., Sci. Data 4, 160134 (2017); 1,056 structures,
  PBE band gap (eV).

Example::

    >>> from basisdb.model.datasets import load_dataset          # doctest: +SKIP
    >>> data = load_dataset("elastic_tensor", "log10_K_VRH")
    >>> len(data), data.target, data.unit
    (1181, 'log10_K_VRH', 'log10(GPa)')
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from basisdb import BasisDBError, command_parser, run_command

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetSpec",
    "LabelledStructures",
    "SDIST_BYTES",
    "SDIST_NAME",
    "SDIST_SHA256",
    "cache_directory",
    "fetch",
    "load_dataset",
    "sdist_path",
]

SDIST_REQUIREMENT = "matminer==0.4.2"
SDIST_NAME = "matminer-0.4.2.tar.gz"
SDIST_SHA256 = "355792330e20b121cae1492e6e8b4bcae4cf5fc5fa30d44241ef680fb809030c"
SDIST_BYTES = 8_389_206  # what a download costs, stated before it starts
SDIST_SIZE = f"{SDIST_BYTES / 1e6:.1f} MB"
MATERIALS_PROJECT = "A. Jain et al., The Materials Project, APL Mater. 1, 011002 (2013)"


class DatasetError(BasisDBError, ValueError):
    """A dataset that cannot be used: a built-in one that is unknown, not fetched yet,
    corrupt or asked for an unknown target; a structure folder without a readable
    ``id_prop.csv``; too few structures for what was asked of them."""


@dataclass(frozen=True)
class Target:
    """A regression target: a CSV column, optionally transformed (log10 needs positive values)."""

    column: str
    unit: str
    log10: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    csv: str
    structure_format: str  # "pymatgen-dict" or "poscar"
    structure_column: str
    targets: dict[str, Target]
    reference: str
    expected_rows: int


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "flla_2015",
            "flla_2015.csv",
            "pymatgen-dict",
            "structure",
            {"formation_energy_per_atom": Target("formation_energy_per_atom", "eV/atom")},
            "F. Faber, A. Lindmaa, O. A. von Lilienfeld, R. Armiento, Int. J. Quantum Chem. 115, 1094 (2015)",
            3938,
        ),
        DatasetSpec(
            "elastic_tensor",
            "elastic_tensor.csv",
            "poscar",
            "poscar",
            {
                "log10_K_VRH": Target("K_VRH", "log10(GPa)", log10=True),
                "log10_G_VRH": Target("G_VRH", "log10(GPa)", log10=True),
                "K_VRH": Target("K_VRH", "GPa"),
                "G_VRH": Target("G_VRH", "GPa"),
            },
            "M. de Jong et al., Sci. Data 2, 150009 (2015)",
            1181,
        ),
        DatasetSpec(
            "dielectric_constant",
            "dielectric_constant.csv",
            "poscar",
            "poscar",
            {"band_gap": Target("band_gap", "eV")},
            "I. Petousis et al., Sci. Data 4, 160134 (2017)",
            1056,
        ),
    )
}


@dataclass(frozen=True, eq=False)
class LabelledStructures:
    """Structures of one dataset with one target.

    Attributes:
        dataset, target, unit: what the values are.
        ids: (n,) Materials Project ids, in CSV order.
        structures: n pymatgen Structures (Cartesian Angstrom, as stored in the CSV).
        values: (n,) float64 target values (after the target's transform).
        formulas: (n,) reduced formulas, for composition baselines.
        rejected: (id, reason) of rows left out: an unusable target (log10 of a
            non-positive modulus) or an unparsable structure; reported, never silently dropped.
        reference: the dataset paper; Materials Project is the source of all three.
    """

    dataset: str
    target: str
    unit: str
    ids: list[str] = field(repr=False)
    structures: list = field(repr=False)
    values: np.ndarray = field(repr=False)
    formulas: list[str] = field(repr=False)
    rejected: list[tuple[str, str]] = field(repr=False)
    reference: str

    def __len__(self) -> int:
        return len(self.ids)

    def report_rejected(self, stream=sys.stderr) -> None:
        """Print the count and ids of the rows left out, with the reason."""
        if self.rejected and stream is not None:
            print(f"skipped {len(self.rejected)} row(s) of {self.dataset} without a usable {self.target}:", file=stream)
            for material, reason in self.rejected:
                print(f"  {material}: {reason}", file=stream)

    def sample(self, n: int, seed: int) -> LabelledStructures:
        """A random subset of n rows (in CSV order), or all of them if n is not smaller."""
        if n >= len(self):
            return self
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))

    def subset(self, index) -> LabelledStructures:
        index = np.asarray(index, dtype=np.int64)
        return LabelledStructures(
            self.dataset,
            self.target,
            self.unit,
            [self.ids[i] for i in index],
            [self.structures[i] for i in index],
            self.values[index],
            [self.formulas[i] for i in index],
            self.rejected,
            self.reference,
        )


def cache_directory() -> Path:
    """``$BASISDB_DATA_DIR``, else the user cache (``~/.cache/basisdb/datasets`` on Linux)."""
    import platformdirs

    configured = os.environ.get("BASISDB_DATA_DIR")
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("basisdb")) / "datasets"


def sdist_path(directory: str | os.PathLike | None = None) -> Path:
    return Path(directory or cache_directory()) / SDIST_NAME


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(directory: str | os.PathLike | None = None, *, force: bool = False, quiet: bool = False) -> Path:
    """Download the matminer 0.4.2 sdist once with ``pip download`` and check its sha256.

    Writes are atomic: the file appears under its final name only after the checksum
    matched.  An existing file with the right checksum is kept (no network).
    """
    target = sdist_path(directory)
    if target.is_file() and not force:
        if _sha256(target) == SDIST_SHA256:
            return target
        if not quiet:
            print(f"{target} has the wrong sha256; downloading it again", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(
            f"downloading {SDIST_REQUIREMENT} ({SDIST_NAME}, {SDIST_SIZE}) from PyPI into {target.parent}",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as scratch:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "--dest",
            scratch,
            SDIST_REQUIREMENT,
        ]
        completed = subprocess.run(command, capture_output=quiet, text=True)
        downloaded = Path(scratch) / SDIST_NAME
        if completed.returncode != 0 or not downloaded.is_file():
            detail = (completed.stderr or "").strip().splitlines()[-1:] if quiet else []
            raise DatasetError(
                f"'{' '.join(command[2:])}' failed (exit {completed.returncode}){': ' + detail[0] if detail else ''}; "
                f"check the network or copy {SDIST_NAME} into {target.parent}"
            )
        digest = _sha256(downloaded)
        if digest != SDIST_SHA256:
            raise DatasetError(f"downloaded {SDIST_NAME} has sha256 {digest}, expected {SDIST_SHA256}; not kept")
        os.replace(downloaded, target)
    return target


def _read_csv(name: str, directory: str | os.PathLike | None) -> list[dict[str, str]]:
    path = sdist_path(directory)
    if not path.is_file():
        raise DatasetError(
            f"{path} is missing: run 'basisdb data fetch' once "
            f"(it downloads {SDIST_REQUIREMENT} from PyPI, {path.name}, {SDIST_SIZE})"
        )
    digest = _sha256(path)
    if digest != SDIST_SHA256:
        raise DatasetError(f"{path} has sha256 {digest}, expected {SDIST_SHA256}: run 'basisdb data fetch --force'")
    with tarfile.open(path, "r:gz") as archive:
        member = f"matminer-0.4.2/matminer/datasets/{name}"
        try:
            raw = archive.extractfile(member).read().decode("utf-8")
        except KeyError:
            raise DatasetError(f"{path} has no {member}") from None
    csv.field_size_limit(1 << 30)
    reader = csv.reader(line for line in io.StringIO(raw) if not line.startswith("#"))
    header = next(reader)
    rows = []
    for row in reader:
        # dielectric_constant.csv has one field more than its header: like pandas, read the
        # first field as an unnamed index (the column names then match the values)
        if len(row) == len(header) + 1:
            row = row[1:]
        if len(row) != len(header):
            raise DatasetError(f"{name} line {reader.line_num}: {len(row)} fields for {len(header)} columns")
        rows.append(dict(zip(header, row)))
    return rows


def _structure_parser(spec: DatasetSpec) -> Callable[[str], object]:
    from pymatgen.core import Structure
    from pymatgen.io.vasp import Poscar

    if spec.structure_format == "pymatgen-dict":
        return lambda text: Structure.from_dict(ast.literal_eval(text))  # Python literals, not JSON
    return lambda text: Poscar.from_str(text).structure


def load_dataset(name: str, target: str, directory: str | os.PathLike | None = None) -> LabelledStructures:
    """One built-in dataset with one target, parsed offline from the cached sdist."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; built-in datasets: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if target not in spec.targets:
        raise DatasetError(f"dataset {name!r} has no target {target!r}; choose one of {', '.join(spec.targets)}")
    rows = _read_csv(spec.csv, directory)
    if len(rows) != spec.expected_rows:
        raise DatasetError(
            f"{spec.csv} has {len(rows)} rows, expected {spec.expected_rows}: the cached sdist is not the published one"
        )
    return _labelled_structures(spec, target, rows)


def _labelled_structures(spec: DatasetSpec, target: str, rows: list[dict[str, str]]) -> LabelledStructures:
    """Parse CSV rows into structures and target values; unusable rows go to ``rejected``."""
    chosen = spec.targets[target]
    parse = _structure_parser(spec)
    ids, structures, values, formulas, rejected = [], [], [], [], []
    with warnings.catch_warnings():
        # pymatgen warns that noble gases lack an electronegativity when it orders a formula
        warnings.filterwarnings("ignore", message="No Pauling electronegativity")
        for row in rows:
            value = float(row[chosen.column])
            if chosen.log10 and not value > 0:
                rejected.append((row["material_id"], f"{chosen.column} = {value} has no log10"))
                continue
            try:
                structure = parse(row[spec.structure_column])
            except Exception as exc:  # pymatgen raises many kinds; the row is reported either way
                rejected.append((row["material_id"], f"cannot parse its structure: {type(exc).__name__}: {exc}"))
                continue
            ids.append(row["material_id"])
            structures.append(structure)
            values.append(np.log10(value) if chosen.log10 else value)
            formulas.append(structure.composition.reduced_formula)
    return LabelledStructures(
        spec.name,
        target,
        chosen.unit,
        ids,
        structures,
        np.asarray(values, dtype=np.float64),
        formulas,
        rejected,
        spec.reference,
    )


def main(argv=None) -> int:
    """``basisdb data fetch | list`` (also ``python -m basisdb.model.data`` or ``.datasets``)."""
    parser = command_parser("basisdb data", "Built-in Materials Project datasets (matminer 0.4.2 sdist, read offline).")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", type=Path, help="cache directory (default: $BASISDB_DATA_DIR or the user cache)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{fetch,list}")
    fetch_parser = commands.add_parser(
        "fetch",
        parents=[where],
        formatter_class=parser.formatter_class,
        help=f"download {SDIST_NAME} once with pip and check its sha256",
        description=f"Download {SDIST_NAME} once with pip and check its sha256.",
    )
    fetch_parser.add_argument("--force", action="store_true", help="download again even if a good copy is cached")
    commands.add_parser(
        "list",
        parents=[where],
        formatter_class=parser.formatter_class,
        help="datasets, targets and row counts",
        description="Datasets, targets and row counts.",
    )
    args = parser.parse_args(argv)
    if args.command == "fetch":
        path = fetch(args.dir, force=args.force)
        print(f"{path}  sha256 {SDIST_SHA256}  ok")
        return 0
    for spec in DATASETS.values():
        print(f"{spec.name:20s} {spec.expected_rows:5d} structures  targets: {', '.join(spec.targets)}")
        print(f"{'':20s} {spec.reference}; data: {MATERIALS_PROJECT}")
    print(f"cache: {sdist_path(args.dir)} ({'present' if sdist_path(args.dir).is_file() else 'missing: run fetch'})")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
