"""The shape of the code: the core's public surface is what its clients use, the packages
depend one way (the service and the model on the core, never on each other, the core on
neither), and the core's modules import each other without a cycle.

Read from the source (AST), not by importing it, so that an import inside a function counts.
"""

import ast
from pathlib import Path

import pytest

import basisdb

from .helpers import INSTALLED_NAMES, REPO_ROOT, installed_module

CLIENTS = ("service", "model", "benchmarks")
EXTENSIONS = ("basisdb.service", "basisdb.model")  # inside the basisdb package, not the core


def _part(module: str) -> str:
    """Which part of the project a module name belongs to: basisdb (the core), basisdb.service,
    basisdb.model, or a name outside the project (its first component)."""
    return next((e for e in EXTENSIONS if module == e or module.startswith(e + ".")), module.split(".")[0])


def _python_files(package: str) -> list[Path]:
    return sorted(path for path in (REPO_ROOT / package).rglob("*.py") if "results" not in path.parts)


def _executed_nodes(tree: ast.AST):
    """Every node, except those under ``if TYPE_CHECKING:`` (never executed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _absolute_imports(tree: ast.AST) -> list[str]:
    modules = []
    for node in _executed_nodes(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def _surface_violations(path: Path) -> list[str]:
    relative = path.relative_to(REPO_ROOT).as_posix()
    tree = ast.parse(path.read_text(), filename=relative)
    inner = set()  # attribute chains are checked from their outermost node (basisdb.x.y, not basisdb.x)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner.add(id(node.value))
    public = set(basisdb.__all__)
    problems = []
    for node in ast.walk(tree):
        where = f"{relative}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _part(node.module or "") == "basisdb":
            if node.module != "basisdb":
                problems.append(f"{where}: from {node.module} import ...; import it from basisdb")
            problems += [f"{where}: {a.name} is not in basisdb.__all__" for a in node.names if a.name not in public]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if _part(alias.name) == "basisdb" and len(parts) > 1:
                    problems.append(f"{where}: import {alias.name}; import names from basisdb")
        elif isinstance(node, ast.Attribute) and id(node) not in inner:
            chain = _dotted(node)
            if chain and _part(".".join(chain)) == "basisdb" and chain[1] not in public:
                problems.append(f"{where}: basisdb.{chain[1]} is not in basisdb.__all__")
    return problems


def test_every_name_in_all_exists_once():
    assert len(basisdb.__all__) == len(set(basisdb.__all__))
    missing = [name for name in basisdb.__all__ if not hasattr(basisdb, name)]
    assert not missing


@pytest.mark.parametrize("package", CLIENTS)
def test_clients_use_only_the_public_surface(package):
    problems = [line for path in _python_files(package) for line in _surface_violations(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("service", {"basisdb.model"}),
        ("model", {"basisdb.service"}),
        ("basisdb", {"basisdb.service", "basisdb.model", "benchmarks"}),
    ],
)
def test_packages_depend_one_way(package, forbidden):
    problems = [
        f"{path.relative_to(REPO_ROOT)} imports {module}"
        for path in _python_files(package)
        for module in _absolute_imports(ast.parse(path.read_text()))
        if _part(module) in forbidden
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder", [*INSTALLED_NAMES, "benchmarks", "tests"])
def test_nothing_imports_a_folder_of_the_checkout_by_its_bare_name(folder):
    """``model`` and ``service`` exist only in a checkout (installed, they are basisdb.model
    and basisdb.service), and would be a user's own model.py wherever that is on the path."""
    problems = [
        f"{path.relative_to(REPO_ROOT)} imports {module}"
        for path in _python_files(folder)
        for module in _absolute_imports(ast.parse(path.read_text()))
        if module.split(".")[0] in {"model", "service"}
    ]
    assert not problems, "\n".join(problems)


def _import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports anywhere in its body (a name taken
    from a package counts as an import of that package's ``__init__``)."""
    paths = {installed_module(path): path for path in _python_files(package)}

    graph = {}
    for module, path in paths.items():
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        edges = set()
        for node in _executed_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join(base + (node.module.split(".") if node.module else []))
                # from . import x: the module x when there is one, else a name of the package
                edges.update(f"{target}.{a.name}" if f"{target}.{a.name}" in paths else target for a in node.names)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[module] = {edge for edge in edges if edge in paths} - {module}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("package", ["basisdb", "service", "model"])
def test_no_import_cycle(package):
    graph = _import_graph(package)
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_import_graph_sees_lazy_and_relative_imports():
    core, model = _import_graph("basisdb"), _import_graph("model")
    assert "basisdb.settings" in core["basisdb.cif"]  # inside a function: the reader asks spglib, quietly
    assert "basisdb.store" not in core["basisdb.build"]
    assert {"basisdb.model.encoded", "basisdb.model.encoding_cache"} <= model["basisdb.model.data"]
    assert "basisdb.model.data" not in model["basisdb.model.encoding_cache"]


def test_the_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
