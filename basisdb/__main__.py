"""Command line: ``python -m basisdb {build,verify,info} ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .build import add_build_arguments, format_table, run_build, summary_rows
from .errors import BasisDBError


def _verify(args: argparse.Namespace) -> int:
    from .audit import audit_store

    report = audit_store(args.path, n_points=args.points, progress=not args.quiet)
    worst = ", ".join(f"{k} {v:.1e}" for k, v in sorted(report.worst.items()))
    print(f"{report.path}: {report.n_datasets} checksums, {report.n_settings} settings re-verified; worst: {worst}")
    for line in report.failures:
        print(f"FAIL {line}")
    print("OK" if report.ok else f"FAILED: {len(report.failures)} problem(s)")
    return 0 if report.ok else 1


def _info(args: argparse.Namespace) -> int:
    from .store import BasisStore

    with BasisStore.open(args.path) as store:
        for key, value in store.provenance.items():
            if key == "hall_numbers":
                value = f"{len(value)} settings ({value[0]}-{value[-1]})"
            print(f"{key:>20}: {value}")
        tables = {hall: store.verification_table(hall=hall) for hall in store.hall_numbers}
        print()
        print(format_table(summary_rows(tables, store.radii)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m basisdb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a store (same options as build_db.py)")
    add_build_arguments(build)
    build.set_defaults(run=run_build)
    verify = commands.add_parser("verify", help="recompute checksums and invariance; exit 1 on failure")
    verify.add_argument("path")
    verify.add_argument("--points", type=int, default=4, help="random points per setting (default: 4)")
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    verify.set_defaults(run=_verify)
    info = commands.add_parser("info", help="provenance and per-radius summary of a store")
    info.add_argument("path", nargs="?", default=None, help="store file (default: the default store)")
    info.set_defaults(run=_info)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BasisDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
