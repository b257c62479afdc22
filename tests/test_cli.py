"""The one command runner: every entry point goes through it, and it maps errors the same way."""

from __future__ import annotations

import ast
import importlib
import inspect
import runpy
import subprocess
import sys

import pytest

from basisdb import EXIT_USAGE, StoreError, command_parser, run_command

from .helpers import BASISDB_COMMAND, INSTALLED_NAMES, REPO_ROOT, installed_module

# The console command's subcommands, as documented (`basisdb build|verify|info|serve|...`).
COMMANDS = ["", "build", "verify", "info", "serve", "train", "pretrain", "evaluate", "predict", "data fetch"]


def _package_sources():
    for package in INSTALLED_NAMES:
        yield from (REPO_ROOT / package).rglob("*.py")
    yield REPO_ROOT / "build_db.py"


def test_project_errors_are_one_line_and_exit_2(capsys):
    def failing(argv):
        raise StoreError("the store at /x is damaged; rebuild it with `basisdb build`")

    assert run_command(failing, []) == EXIT_USAGE
    assert capsys.readouterr().err == "error: the store at /x is damaged; rebuild it with `basisdb build`\n"


def test_a_bug_is_not_hidden():
    def buggy(argv):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_command(buggy, [])


def test_status_and_none_pass_through():
    assert run_command(lambda argv: 1, []) == 1
    assert run_command(lambda argv: None, []) == 0


def test_help_shows_defaults_once(capsys):
    parser = command_parser("demo", "A demo.")
    parser.add_argument("--radius", type=float, default=4.0, help="cut-off")
    parser.add_argument("--points", type=int, default=8, help="points (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument("--out", default=None, help="where")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "cut-off (default: 4.0)" in text and "points (default: 8)" in text and "seed (default: 0)" in text
    assert "where (default" not in text and "progress bar (default" not in text


@pytest.mark.slow  # CLI subprocess
def test_a_closed_output_pipe_exits_like_sigpipe(small_store):
    command = f"{sys.executable} -m basisdb info {small_store} | head -1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # CLI subprocesses
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_shows_its_defaults(command):
    result = subprocess.run(
        [BASISDB_COMMAND, *command.split(), "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: basisdb {command}".rstrip()), result.stdout
    assert "(default:" in result.stdout or not command, result.stdout


@pytest.mark.slow  # CLI subprocesses
def test_build_db_is_basisdb_build_in_a_checkout():
    script = subprocess.run(
        [sys.executable, "build_db.py", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    command = subprocess.run([BASISDB_COMMAND, "build", "--help"], capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and "(default:" in script.stdout
    assert script.stdout.split("options:")[1] == command.stdout.split("options:")[1]


@pytest.mark.slow  # CLI subprocesses
def test_the_basisdb_command_lists_what_the_service_and_the_model_add():
    result = subprocess.run([BASISDB_COMMAND, "--help"], capture_output=True, text=True, timeout=120)
    listed = result.stdout.split("positional arguments:")[1]
    for command in ("serve", "train", "pretrain", "evaluate", "predict", "data"):
        assert f"see `basisdb {command} --help`" in listed
    unknown = subprocess.run([BASISDB_COMMAND, "trian"], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "invalid choice: 'trian'" in unknown.stderr and "'train'" in unknown.stderr


def test_a_command_whose_extra_is_missing_says_which_to_install(tmp_path, monkeypatch, capsys):
    """An added command whose dependency is not installed (the model's torch, say) names the
    extra to install instead of ending in an ImportError; another package's command says to
    install what it needs; a command whose own module is missing is a broken install, and
    stays a traceback."""
    from importlib.metadata import EntryPoint

    import basisdb
    from basisdb.commands import _run_added

    needy = "import a_dependency_that_is_not_installed\n"
    part = tmp_path / "inside" / "extra_part"  # a part of basisdb, as basisdb.model is
    part.mkdir(parents=True)
    (part / "__init__.py").write_text("")
    (part / "train.py").write_text(needy)
    monkeypatch.setattr(basisdb, "__path__", [*basisdb.__path__, str(tmp_path / "inside")])
    (tmp_path / "addon").mkdir()
    (tmp_path / "addon" / "__init__.py").write_text("")
    (tmp_path / "addon" / "train.py").write_text(needy)
    monkeypatch.syspath_prepend(str(tmp_path))
    missing = "error: `basisdb train` needs 'a_dependency_that_is_not_installed', which is not installed: "
    for module, remedy in [
        ("basisdb.extra_part.train", "pip install 'basisdb[extra_part]'"),
        ("addon.train", "install it, or reinstall addon with its dependencies"),
    ]:
        entry = EntryPoint("train", f"{module}:main", "basisdb.commands")
        assert run_command(lambda argv, entry=entry: _run_added("train", entry, argv), []) == EXIT_USAGE
        assert capsys.readouterr().err == missing + remedy + "\n"
    gone = EntryPoint("train", "addon.gone:main", "basisdb.commands")
    with pytest.raises(ModuleNotFoundError):
        _run_added("train", gone, [])


def _goes_through_the_runner(path, block: ast.If) -> bool:
    """The ``__main__`` block calls ``run_command(...)``, or a function whose own body does
    (the console script ``basisdb`` needs a ``main`` that returns the runner's status)."""
    source = ast.unparse(block)
    if "run_command(" in source:
        return True
    module = installed_module(path) if path.name != "build_db.py" else "build_db"
    names = {node.func.id for node in ast.walk(block) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    namespace = (
        runpy.run_path(str(path), run_name=f"{module}-imported")
        if path.name == "build_db.py"
        else vars(importlib.import_module(module))
    )
    return any("run_command(" in inspect.getsource(namespace[name]) for name in names - {"print"} if name in namespace)


def test_every_entry_point_runs_through_the_runner():
    """Each ``__main__`` block exits through ``run_command``, and no module prints its own
    ``error:`` lines: the runner is the one place errors become messages and exit codes."""
    entry_points, printers = [], []
    for path in _package_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                entry_points.append((path.relative_to(REPO_ROOT), _goes_through_the_runner(path, node)))
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "print" and path.name != "cli.py":
                first = node.args[0] if node.args else None
                if isinstance(first, ast.JoinedStr | ast.Constant) and ast.unparse(first).lstrip("f'\"").startswith(
                    "error:"
                ):
                    printers.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert len(entry_points) >= 8, entry_points
    assert [path for path, runs in entry_points if not runs] == []
    assert printers == []


def test_version_is_printed_without_a_command(capsys):
    import basisdb
    from basisdb.commands import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"basisdb {basisdb.__version__}\n"


def test_info_names_the_groups_without_an_invariant_function_at_a_radius(small_store, capsys):
    from basisdb import build_basis
    from basisdb.commands import main

    assert main(["info", str(small_store)]) == 0
    out = capsys.readouterr().out
    # at radius 2 every frequency of I-43d, Fd-3c and Ia-3d is a systematic absence
    empty = [group for group in range(1, 231) if build_basis(group=group, radius=2).n_basis == 0]
    assert empty == [220, 228, 230]
    assert all(build_basis(group=group, radius=3).n_basis > 0 for group in empty)
    assert (
        "n_basis 0 at radius 2: 220 I-43d (Hall 516; first at radius 3), 228 Fd-3c (Hall 527; first at radius 3), "
        "230 Ia-3d (Hall 530; first at radius 3)" in out
    )
    assert "n_basis 0 at radius 3" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "{tmp}/nope.h5"], "no basis store at {tmp}/nope.h5: it does not exist; build one with"),
        (["verify", "{tmp}/nope.h5"], "no basis store at {tmp}/nope.h5: it does not exist"),
        (["info", "{tmp}"], "no basis store at {tmp}: it is a folder, not a store file"),
        (
            ["predict", "--checkpoint", "{tmp}/run", "--data", "{tmp}/si.cif", "--out", "-"],
            "no checkpoint at {tmp}/run: it does not exist (expected a directory with model.pt)",
        ),
        (
            ["predict", "--checkpoint", "{tmp}", "--data", "{tmp}/si.cif", "--out", "-"],
            "no checkpoint at {tmp}: it has no model.pt",
        ),
        (["evaluate", "--config", "{tmp}/run/config.toml"], "{tmp}/run/config.toml is missing"),
    ],
)
def test_a_missing_file_is_reported_as_missing_by_the_name_given(argv, message, tmp_path, capsys):
    from basisdb.commands import main

    (tmp_path / "si.cif").write_text("data_si\n")  # the structures are there: only the named file is not
    argv = [part.format(tmp=tmp_path) for part in argv]
    assert run_command(main, argv) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith(f"error: {message.format(tmp=tmp_path)}") and error.count("\n") == 1, error


@pytest.mark.parametrize(
    "command, what",
    [
        ("build", "the store (an HDF5 file)"),
        ("train", "a checkpoint (a folder)"),
        ("pretrain", "an encoder checkpoint"),
    ],
)
def test_out_dash_is_refused_where_the_output_is_not_a_table(command, what, tmp_path, capsys, monkeypatch):
    from basisdb.commands import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main([command, "--out", "-"])
    error = capsys.readouterr().err
    assert exited.value.code == EXIT_USAGE and "'-' (standard output) is for commands that write a table" in error
    assert what in error and list(tmp_path.iterdir()) == []


def test_predict_names_data_paths_that_do_not_exist(tmp_path, capsys):
    from basisdb.commands import main

    (tmp_path / "here.cif").write_text("data_x\n")
    argv = ["predict", "--checkpoint", str(tmp_path), "--data", str(tmp_path / "here.cif"), "nope.vasp", "--out", "-"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    error = capsys.readouterr().err
    assert exited.value.code == EXIT_USAGE and "--data: no such file or folder: nope.vasp\n" in error
