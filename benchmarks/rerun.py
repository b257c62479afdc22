"""Rerun the runs behind published tables, or single runs, from their frozen configurations.

    python benchmarks/rerun.py headline                    # every run the headline table reads
    python benchmarks/rerun.py ablations learning-curve    # several tables
    python benchmarks/rerun.py elastic_tensor-log10_K_VRH/cft --threads 2
    python benchmarks/rerun.py headline --dry-run          # print the commands only

Each run is ``basisdb evaluate --config benchmarks/results/RUN/config.toml``, written to
``--out/RUN`` (``runs/rerun`` by default, so that the shipped results stay as they are until
the new ones are copied over them); ``python benchmarks/tables.py`` then reads whichever
folder ``--results`` names.  A run of an older recipe version (``(recipe 1)`` in the tables)
reruns with today's arithmetic, so within the spread over seeds rather than to the digit.
The pretrained encoders rerun with the ``basisdb pretrain`` commands of the manifest.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
MANIFEST = ROOT / "manifest.toml"


def runs_of(table: str, manifest: dict) -> list[str]:
    """The run folders behind ``table``, in the manifest's order."""
    spec = manifest[table]
    if table == "headline":  # the published CFT is chosen among the variants
        names = spec["runs"] + manifest["variants"]["runs"]
    elif table == "learning-curve":
        names = [f"{spec['prefix']}/{run.format(size=size)}" for size in spec["sizes"] for _, run, _ in spec["methods"]]
    elif "pairs" in spec:
        names = [name for pair in spec["pairs"] for name in pair if "/" in name]
    elif "rows" in spec:
        names = [name for name, _ in spec["rows"]]
    else:
        names = list(spec.get("runs", []))
    return list(dict.fromkeys(names))


def shown(path: Path) -> str:
    """``path`` relative to the working directory where it lies below it, for readable commands."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def commands(names: list[str], out: Path, threads: int, manifest: dict, tables: list[str]) -> list[list[str]]:
    found = []
    for name in names:
        config = RESULTS / name / "config.toml"
        if not config.is_file():
            raise SystemExit(f"no run {name!r}: {config} is missing (runs are folders of {RESULTS})")
        found.append(
            ["basisdb", "evaluate", "--config", shown(config), "--out", str(out / name), "--threads", str(threads)]
        )
    if "pretraining" in tables:
        for folder, _, command in manifest["pretraining"]["encoders"]:
            found.append([*shlex.split(command), "--out", str(out / "pretraining" / folder)])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "targets", nargs="+", help="tables of benchmarks/manifest.toml, or run folders (DATASET-TARGET/NAME)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/rerun"), help="where the reruns go (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    manifest = tomllib.loads(MANIFEST.read_text())
    tables = [target for target in args.targets if target in manifest]
    names = [target for target in args.targets if target not in manifest]
    unknown = [name for name in names if "/" not in name]
    if unknown:
        parser.error(f"unknown table(s) {', '.join(unknown)}; tables: {', '.join(manifest)}; or a run folder")
    for table in tables:
        names += runs_of(table, manifest)
    todo = commands(list(dict.fromkeys(names)), args.out, args.threads, manifest, tables)
    for number, command in enumerate(todo, 1):
        print(f"[{number}/{len(todo)}] {shlex.join(command)}", flush=True)
        if not args.dry_run:
            subprocess.run(command, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
