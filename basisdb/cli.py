"""The one way the project's commands start and stop.

Every entry point (``basisdb``, ``build_db.py``, and the commands that
the service and the model add to it: ``basisdb serve|train|pretrain|evaluate|predict|data``)
builds its parser with :func:`command_parser` and runs its ``main`` through :func:`run_command`,
so that all of them show their defaults in ``--help``, report a project error as one line
``error: ...`` on stderr, and use the same exit codes:

=====  ===========================================================
0      done
1      the command ran and found a problem (a failed verification)
2      bad input: usage, arguments, a missing or invalid file
128+N  stopped by signal N (130 for Ctrl-C, 141 when the output pipe closes)
=====  ===========================================================

A bug is not a project error: it still ends in a traceback, which is what a report needs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import BasisDBError, BuildInterrupted

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "command_parser", "output_path", "run_command"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's own status for a usage error


def output_path(what: str) -> Callable[[str], Path]:
    """An argparse type for an ``--out`` that is not a table: ``-`` (standard output, which
    the commands that write a table accept) is refused, naming ``what`` is written."""

    def parse(text: str) -> Path:
        if text == "-":
            raise argparse.ArgumentTypeError(
                f"'-' (standard output) is for commands that write a table; {what} needs a path"
            )
        return Path(text)

    parse.__name__ = "path"  # argparse names the type in its messages
    return parse


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults appended to every option's help; descriptions keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        # A default already written into the text, or one that says nothing, is not repeated.
        says_nothing = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if says_nothing or "%(default)" in help_text or "default:" in help_text:
            return help_text
        return super()._get_help_string(action)


def command_parser(prog: str, description: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser whose ``--help`` shows every option's default."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter, **kwargs)


def run_command(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` and turn the project's errors into a message and an exit code.

    :class:`~basisdb.errors.BasisDBError` (bad input, a store that cannot be read, a checkpoint
    of another version, ...) prints ``error: <message>`` and returns 2; a build stopped by a
    signal, Ctrl-C and a closed output pipe return 128 + the signal number.  ``SystemExit`` (argparse's usage errors,
    ``--help``) passes through unchanged.
    """
    try:
        status = main(argv)
    except BuildInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 128 + exc.signal_number
    except BasisDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # The reader left (``basisdb info | head``): point stdout at /dev/null so that the
        # interpreter's final flush does not raise again, and exit as a SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return EXIT_OK if status is None else int(status)
