"""The code style is checked where the tests run: ruff's lint rules and its formatter, as
configured in pyproject.toml (line length 120)."""

import subprocess
import sys

import pytest

from .helpers import REPO_ROOT


@pytest.mark.parametrize(
    "command", [["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]], ids=["lint", "format"]
)
def test_ruff(command):
    # ruff comes with the dev extras (pip install -e '.[dev]'); run from this interpreter, so
    # that an unactivated virtual environment finds it too
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
