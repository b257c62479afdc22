"""The ``basisdb`` command (``basisdb build|verify|info``, also ``python -m basisdb``) and
``build_db.py``, which is ``basisdb build`` under the name a checkout gives it.

The service and the model add their commands (``basisdb serve``, ``basisdb train``, ...) as
entry points of the group ``basisdb.commands``, each naming a ``main(argv) -> status``: the
core runs them by name without importing either package, and says which extra to install
when one is missing.

Each runs through :func:`basisdb.cli.run_command`: a project error is one line ``error: ...``
and exit status 2, a build stopped by a signal exits with 128 + its number.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points

import numpy as np

from ._version import __version__
from .audit import audit_store
from .build import DEFAULT_RADII, StopRequest, build_store, format_table, summary_rows
from .checks import DEFAULT_POINTS, DEFAULT_SEED
from .cli import EXIT_FAILED, EXIT_OK, command_parser, output_path, run_command
from .errors import BasisDBError
from .settings import get_setting
from .store import BasisStore
from .store_format import default_store_path

__all__ = ["COMMAND_GROUP", "main", "build_main", "add_build_arguments", "added_commands", "stop_on_signals"]

COMMAND_GROUP = "basisdb.commands"
_CORE_COMMANDS = ("build", "verify", "info")

_BUILD_DESCRIPTION = "Build the verified HDF5 store of symmetry-adapted Fourier bases."


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``basisdb build`` and ``build_db.py``."""
    parser.add_argument(
        "--radii", type=float, nargs="+", default=list(DEFAULT_RADII), metavar="R", help="truncation radii"
    )
    parser.add_argument(
        "--out",
        type=output_path("the store (an HDF5 file)"),
        default=None,
        help=f"output file (default: {default_store_path()})",
    )
    parser.add_argument(
        "--settings",
        default="default",
        help="'default' (230 settings), 'all' (530 Hall settings), or Hall numbers and ranges such as '1-30,525'",
    )
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores)")
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask distributed scheduler address, e.g. tcp://10.0.0.5:8786",
    )
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS, help="random points of the invariance check")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="their seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@contextmanager
def stop_on_signals(request: StopRequest) -> Iterator[StopRequest]:
    """While inside, SIGINT (Ctrl-C) and SIGTERM (``kill``, ``docker stop``) set ``request``,
    so that a build stops between two settings, its writer removes the temporary file and the
    previous store stays; the previous handlers come back on exit.

    The handler only records the signal: an exception raised from a signal handler can land
    in a weakref callback or ``__del__``, where Python ignores it.  A second Ctrl-C
    interrupts at once.
    """

    def record(signum, frame):
        if request.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.signal_number = signum

    previous = {signum: signal.signal(signum, record) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _build(args: argparse.Namespace) -> int:
    with stop_on_signals(StopRequest()) as stop:
        report = build_store(
            args.out,
            radii=args.radii,
            settings=args.settings,
            workers=args.workers,
            scheduler=args.scheduler,
            n_points=args.points,
            seed=args.seed,
            progress=not args.quiet,
            stop=stop,
        )
    print(report.format_summary())
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    report = audit_store(args.path, n_points=args.points, progress=not args.quiet)
    worst = ", ".join(f"{k} {v:.1e}" for k, v in sorted(report.worst.items()))
    print(f"{report.path}: {report.n_datasets} checksums, {report.n_settings} settings re-verified; worst: {worst}")
    for line in report.failures:
        print(f"FAIL {line}")
    print("OK" if report.ok else f"FAILED: {len(report.failures)} problem(s)")
    return EXIT_OK if report.ok else EXIT_FAILED


def _info(args: argparse.Namespace) -> int:
    with BasisStore.open(args.path) as store:
        for key, value in store.provenance.items():
            if key == "hall_numbers":
                value = f"{len(value)} settings ({value[0]}-{value[-1]})"
            print(f"{key:>20}: {value}")
        tables = {hall: store.verification_table(hall=hall) for hall in store.hall_numbers}
        print()
        print(format_table(summary_rows(tables, store.radii)))
        for line in empty_bases(tables, store.radii):
            print(line)
    return EXIT_OK


def empty_bases(tables: dict[int, np.ndarray], radii: Sequence[float]) -> list[str]:
    """A line per radius at which some settings have no invariant function: every plane wave
    within it is a systematic absence of theirs; with the first radius that has one."""
    lines = []
    for i, radius in enumerate(radii):
        empty = [hall for hall, table in sorted(tables.items()) if table["n_basis"][i] == 0]
        if not empty:
            continue
        named = []
        for hall in empty:
            setting = get_setting(hall=hall)
            first = next((r for j, r in enumerate(radii) if tables[hall]["n_basis"][j] > 0), None)
            then = f"first at radius {first:g}" if first is not None else "none at any radius of this store"
            named.append(f"{setting.group} {setting.international} (Hall {hall}; {then})")
        lines.append(
            f"n_basis 0 at radius {radius:g}: {', '.join(named)}: every frequency within that radius is a "
            "systematic absence of the group, so it has no invariant function there"
        )
    return lines


def added_commands() -> dict[str, EntryPoint]:
    """The commands that installed packages add to ``basisdb`` (entry points of the group
    :data:`COMMAND_GROUP`), by name; a name of the core's own commands is not taken."""
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP) if ep.name not in _CORE_COMMANDS}


def _run_added(name: str, entry: EntryPoint, argv: Sequence[str]) -> int:
    try:
        command = entry.load()
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(entry.module):
            raise  # the command's own module is gone: a broken install, which a traceback shows
        package, *inside = entry.module.split(".")
        # the project's own parts come with an extra of their name; another package's command
        # needs what that package declares
        remedy = (
            f"pip install 'basisdb[{inside[0]}]'"
            if package == "basisdb" and inside
            else f"install it, or reinstall {entry.dist.name if entry.dist else package} with its dependencies"
        )
        raise BasisDBError(f"`basisdb {name}` needs {exc.name!r}, which is not installed: {remedy}") from None
    return command(list(argv))


def _parser(added: dict[str, EntryPoint]) -> argparse.ArgumentParser:
    parser = command_parser("basisdb", "Build, verify and describe basis stores; serve them, train and predict.")
    parser.add_argument("--version", action="version", version=f"basisdb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, run) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, formatter_class=parser.formatter_class)
        sub.set_defaults(run=run)
        return sub

    add_build_arguments(command("build", _BUILD_DESCRIPTION, _build))
    verify = command("verify", "Recompute checksums and invariance of a store; exit 1 on failure.", _verify)
    verify.add_argument("path")
    verify.add_argument("--points", type=int, default=DEFAULT_POINTS, help="random points per setting")
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    info = command("info", "Provenance and per-radius summary of a store.", _info)
    info.add_argument("path", nargs="?", default=None, help="store file (default: the default store)")
    for name, entry in sorted(added.items()):
        # listed here, parsed by the command itself (see _main)
        commands.add_parser(name, help=f"see `basisdb {name} --help` ({entry.module})", add_help=False)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    added = added_commands()
    if argv and argv[0] in added:
        return _run_added(argv[0], added[argv[0]], argv[1:])
    args = _parser(added).parse_args(argv)
    return args.run(args)


def _build_main(argv: Sequence[str] | None) -> int:
    parser = command_parser("build_db.py", _BUILD_DESCRIPTION + " The same command as `basisdb build`.")
    add_build_arguments(parser)
    return _build(parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """``basisdb``: returns the exit status."""
    return run_command(_main, argv)


def build_main(argv: Sequence[str] | None = None) -> int:
    """``build_db.py``: returns the exit status."""
    return run_command(_build_main, argv)
