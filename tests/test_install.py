"""The installed layout: one top-level package, ``basisdb``, with the service and the model
inside it (``basisdb.service``, ``basisdb.model``), so that a user's own ``model.py`` or
``service.py`` cannot shadow them, and the ``basisdb`` command with all its subcommands.

The wheel is built from the files the Docker image copies, and installed into a fresh
virtual environment that sees this one's dependencies but not the checkout.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from .helpers import REPO_ROOT

pytestmark = pytest.mark.slow  # pip wheel, a virtual environment

SHADOWS = "raise ImportError('this is the user\\'s own {name}.py, which the project must not import')\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source)
    for folder in ("basisdb", "service", "model"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out)]
    result = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("basisdb-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A virtual environment with the wheel installed; its dependencies come from this one, whose
    site-packages it lists after its own (a .pth of plain paths: the .pth files there, the
    checkout's editable install among them, are not run).  Not ``system_site_packages``: that
    is the base interpreter's, which holds the dependencies only where someone put them by hand."""
    environment = tmp_path_factory.mktemp("venv")
    venv.create(environment, with_pip=True)
    own = Path(sysconfig.get_path("purelib", vars={"base": str(environment), "platbase": str(environment)}))
    (own / "dependencies.pth").write_text("".join(f"{path}\n" for path in site.getsitepackages()))
    python = environment / "bin" / "python"
    result = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return environment


def test_the_wheel_holds_one_top_level_package_with_the_explorer_and_the_commands(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n) for n in names if n.endswith("entry_points.txt")).decode()
        metadata = next(archive.read(n) for n in names if n.endswith(".dist-info/METADATA")).decode()
    assert "License-Expression: MIT" in metadata and "Requires-Dist: gemmi" in metadata
    pymatgen = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: pymatgen")]
    assert pymatgen and all('extra == "service"' not in line and "extra ==" in line for line in pymatgen)
    assert {name.split("/")[0] for name in names} == {"basisdb", wheel.name.split("-py3")[0] + ".dist-info"}
    assert {"basisdb/model/train.py", "basisdb/service/app.py", "basisdb/service/routers/explorer.py"} <= set(names)
    assert {f"basisdb/service/static/explorer.{ext}" for ext in ("html", "js", "css")} <= set(names)
    assert "basisdb = basisdb.__main__:main" in entry_points
    for command in ("serve", "train", "pretrain", "evaluate", "predict", "data"):
        assert f"\n{command} = basisdb." in entry_points


def test_a_users_own_model_and_service_modules_shadow_nothing(installed, tmp_path):
    """The issue's reproduction: a working directory with its own model.py and service.py."""
    for name in ("model", "service"):
        (tmp_path / f"{name}.py").write_text(SHADOWS.format(name=name))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

    def run(*command: str | Path) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    python, basisdb = installed / "bin" / "python", installed / "bin" / "basisdb"
    imported = run(
        python,
        "-c",
        "import basisdb, basisdb.model.train, basisdb.service.app\n"
        "from basisdb.model import load_checkpoint\n"
        "print(basisdb.__file__, basisdb.model.__file__, basisdb.service.__file__, sep='\\n')",
    )
    assert imported.returncode == 0, imported.stderr
    assert all(Path(line).is_relative_to(installed) for line in imported.stdout.split()), imported.stdout
    for command in ("train", "serve", "predict", "data"):
        shown = run(basisdb, command, "--help")
        assert shown.returncode == 0 and shown.stdout.startswith(f"usage: basisdb {command}"), shown.stderr
    # python -m puts the working directory first on the path: still nothing of the user's is imported
    module = run(python, "-m", "basisdb", "evaluate", "--help")
    assert module.returncode == 0 and module.stdout.startswith("usage: basisdb evaluate"), module.stderr
