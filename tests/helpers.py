"""Plain helpers shared by test modules; fixtures live in conftest.py.

Test modules import from here and never from each other, so that each can run alone.
"""

from __future__ import annotations

import functools
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from basisdb import N_GROUPS, TRANSLATION_DENOMINATOR, Cell, default_hall_number
from basisdb.redescriptions import random_crystal
from basisdb.service.__main__ import listening_socket

REPO_ROOT = Path(__file__).resolve().parents[1]
# The checkout's folders and the names they install under (pyproject's package-dir): a bare
# `model` or `service` exists only in a checkout, so nothing may import it.
INSTALLED_NAMES = {"basisdb": "basisdb", "service": "basisdb.service", "model": "basisdb.model"}
# The console script that `pip install` puts beside the interpreter.
BASISDB_COMMAND = str(Path(sys.executable).with_name("basisdb"))
SMALL_RADII = (2, 3, 4)
ALL_GROUPS = range(1, N_GROUPS + 1)
DEFAULT_HALLS = [default_hall_number(g) for g in ALL_GROUPS]
# A dozen of the 230 groups, the quick tier's share of a sweep over all of them (which runs
# whole in the full suite): every crystal family, C, F and I centring, rhombohedral and
# hexagonal axes, an enantiomorph (P3_221), glides and screws, Fd-3m's origin choice.
QUICK_GROUPS = (1, 2, 5, 14, 43, 62, 88, 148, 154, 166, 194, 227)


def every_group(quick=QUICK_GROUPS) -> list:
    """``ALL_GROUPS`` as pytest parameters, those not in ``quick`` marked slow."""
    import pytest

    return [pytest.param(group, marks=() if group in quick else pytest.mark.slow) for group in ALL_GROUPS]


# --- commands ---------------------------------------------------------------------------------


def installed_module(path: Path) -> str:
    """The name a source file of the checkout is imported by: model/data.py -> basisdb.model.data."""
    folder, *rest = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join([INSTALLED_NAMES[folder], *(rest[:-1] if rest[-1:] == ["__init__"] else rest)])


def run_cli(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run a command of this repository with the current interpreter, from the repository
    root: ``run_cli("build_db.py", ...)``, ``run_cli("-m", "basisdb", "verify", ...)``."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def run_basisdb(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """``basisdb ARGS``: the installed console command, as a user runs it (``train``, ``serve``, ...)."""
    return subprocess.run(
        [BASISDB_COMMAND, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, **kwargs
    )


# --- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    """A free loopback port, for a server that is told its port (``basisdb serve --port 0``
    chooses and keeps its own, and prints it)."""
    with listening_socket("127.0.0.1", 0) as sock:
        return sock.getsockname()[1]


def serve(command, env=None) -> subprocess.Popen:
    """Start a server process from the repository root; its stderr is kept for failures."""
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> dict:
    import httpx
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {process.stderr.read()}")
        try:
            answer = httpx.get(f"{url}/v1/health", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("server did not become healthy")


MEMORY_CAP = 3 << 30  # address space of a hostile test's server: a runaway allocation fails, not the machine


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


class Server:
    """``basisdb serve`` in a subprocess with a memory cap; ``url``, ``stdout`` text."""

    def __init__(self, store: Path, *options: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(store).with_suffix(f".{self.port}.log"), "w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [BASISDB_COMMAND, "serve", "--store", str(store), "--port", str(self.port), *options],
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_limit_memory,
        )

    def output(self) -> str:
        with open(self.log.name) as log:
            return log.read()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> float:
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        stopped = time.monotonic() - began
        self.log.close()
        return stopped


def health_ms(url: str, client=None) -> float:
    """Milliseconds for /v1/health (pass an httpx client to reuse its connection: a new one
    costs the test process more than the server)."""
    import httpx

    client = client or httpx.Client(timeout=5)
    began = time.perf_counter()
    assert client.get(f"{url}/v1/health", timeout=5).status_code == 200
    return 1000 * (time.perf_counter() - began)


class HealthPoll:
    """Polls /v1/health in a thread while the block runs; ``latencies`` in milliseconds."""

    def __init__(self, url: str, every: float = 0.005):
        self.url, self.every = url, every
        self.latencies: list[float] = []
        self._stop = threading.Event()

    def __enter__(self) -> HealthPoll:
        self._thread = threading.Thread(target=self._poll)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        import httpx

        with httpx.Client() as polling:
            while not self._stop.is_set():
                self.latencies.append(health_ms(self.url, polling))
                time.sleep(self.every)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


# --- bases, evaluated independently of basisdb's encoders --------------------------------------


def naive_features(routing, frequencies, points):
    """exp of every plane wave, then a dense product: independent of Basis.encode."""
    waves = np.exp(2j * np.pi * (points @ frequencies.T))
    return waves @ routing.toarray().T


def moved_points(setting, points):
    """(n_ops * n_points, 3): every operation, centring included, applied to every point."""
    t = setting.translations / TRANSLATION_DENOMINATOR
    return (np.einsum("oij,pj->opi", setting.rotations.astype(float), points) + t[:, None, :]).reshape(-1, 3)


# --- lattices ---------------------------------------------------------------------------------

# A lattice of each crystal family with no metric specialization beyond the family's own.
GENERIC = {
    "triclinic": (4.1, 5.3, 6.2, 71, 83, 97),
    "monoclinic": (4.1, 5.3, 6.2, 90, 103, 90),
    "orthorhombic": (4.1, 5.3, 6.2, 90, 90, 90),
    "tetragonal": (4.1, 4.1, 6.2, 90, 90, 90),
    "trigonal": (4.1, 4.1, 6.2, 90, 90, 120),
    "hexagonal": (4.1, 4.1, 6.2, 90, 90, 120),
    "cubic": (4.1, 4.1, 4.1, 90, 90, 90),
}


def lattice_from_parameters(a, b, c, alpha, beta, gamma):
    """Rows a, b, c (Angstrom) from lengths and angles (degrees)."""
    al, be, ga = np.radians([alpha, beta, gamma])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    return np.array([[a, 0, 0], [b * np.cos(ga), b * np.sin(ga), 0], [cx, cy, np.sqrt(c * c - cx * cx - cy * cy)]])


def generic_lattice(setting):
    return lattice_from_parameters(*GENERIC[setting.crystal_system])


# --- comparing cells -------------------------------------------------------------------------


def same_cell(a: Cell, b: Cell, tolerance: float = 1e-6) -> bool:
    """The same lattice up to a rotation (metric tensors to 1e-5: a CIF keeps only lengths and
    angles) and a one-to-one matching of atoms of the same element whose fractional positions
    agree within ``tolerance`` (per axis, modulo 1)."""
    from scipy.optimize import linear_sum_assignment

    if a.n_atoms != b.n_atoms or not np.allclose(a.lattice @ a.lattice.T, b.lattice @ b.lattice.T, atol=1e-5):
        return False
    delta = a.positions[:, None, :] - b.positions[None]
    delta -= np.rint(delta)
    cost = np.abs(delta).max(axis=-1) + (a.numbers[:, None] != b.numbers[None])
    rows, columns = linear_sum_assignment(cost)
    return bool(cost[rows, columns].max() < tolerance)


# --- real structures --------------------------------------------------------------------------


@functools.cache
def _cubic_structure(group, a: float, species: tuple, coordinates: tuple):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup(group, Lattice.cubic(a), list(species), [list(xyz) for xyz in coordinates])


def cubic_structure(group, a: float, species, coordinates):
    """``Structure.from_spacegroup`` on a cubic lattice, as a fresh copy of one made once:
    pymatgen takes about half a second to set up a space group's operations each time."""
    return _cubic_structure(group, float(a), tuple(species), tuple(map(tuple, coordinates))).copy()


# Materials Project structures that pymatgen ships for its own tests.
REAL = ["LiFePO4", "TiO2", "BaNiO3", "Li2O", "SiO2", "CsCl"]


def readme_python_block(marker: str) -> str:
    """The one ```python block of README.md that contains ``marker``, as its text."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"{len(found)} README python blocks contain {marker!r}"
    return found[0]


def real(name: str):
    """One of ``REAL`` as a pymatgen Structure."""
    from importlib.resources import files

    from pymatgen.core import Structure

    return Structure.from_file(str(files("pymatgen.util") / "structures" / f"{name}.json"))


# --- hostile payloads (also sent by benchmarks/service_abuse.py) ------------------------------


def p1_structure(n: int, seed: int = 0) -> dict:
    """A random P1 crystal of n atoms in the service's JSON structure form."""
    cell = random_crystal(n, np.random.default_rng(seed))
    return {"lattice": cell.lattice.tolist(), "species": cell.numbers.tolist(), "positions": cell.positions.tolist()}


def fcc_cif(sites: int) -> str:
    """An Fm-3m CIF whose general-position sites expand 192-fold."""
    rng = np.random.default_rng(3)
    rows = "\n".join(
        f"Si{i} Si {x:.5f} {y:.5f} {z:.5f}" for i, (x, y, z) in enumerate(rng.random((sites, 3)) * 0.25 + 0.01)
    )
    return (
        "data_big\n_symmetry_space_group_name_H-M 'F m -3 m'\n_cell_length_a 40\n_cell_length_b 40\n_cell_length_c 40\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n"
        f"_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n{rows}\n"
    )


def randomize_pair_terms(model) -> None:
    """Random weights for the CFT's terms that start neutral (a zero radial bias weighs every
    centring copy alike, a neighbour interaction's zero last layer adds nothing), so that a
    test of them can fail."""
    from torch import nn

    nn.init.normal_(model.radial_bias.weight)
    for interaction in getattr(model, "interactions", ()):
        nn.init.normal_(interaction.out[-1].weight, std=0.3)
        nn.init.normal_(interaction.out[-1].bias, std=0.3)
