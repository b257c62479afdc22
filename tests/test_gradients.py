"""The gradient of a prediction with respect to the input's atomic positions
(``Predictor.value_and_gradient``), through the differentiable model input of
:mod:`basisdb.model.gradients`: it agrees with finite differences, and like the prediction it
is a property of the crystal (re-described by :mod:`basisdb.redescriptions`)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from basisdb import Cell  # noqa: E402
from basisdb.model import load_checkpoint  # noqa: E402
from basisdb.redescriptions import (  # noqa: E402
    RELABELLINGS,
    SUPERCELLS,
    cell_change,
    mirrored,
    permuted,
    random_crystal,
    random_unimodular,
    rotated,
)

from .helpers import REAL, real  # noqa: E402

# Crystals whose atoms have free coordinates (a nonzero gradient): olivine LiFePO4 (Pnma),
# rutile TiO2 (P4_2/mnm), quartz SiO2, a P1 crystal anchored on its one oxygen, and a P1
# crystal of one species whose origin the structure-factor phases put (frames weighted by |F|^2).
FREE = ["LiFePO4", "TiO2", "SiO2"]


def _p1_crystal() -> Cell:
    rng = np.random.default_rng(5)
    cell = random_crystal(6, rng, numbers=(14,), volume_per_atom=14.0)
    return Cell(cell.lattice, cell.positions, np.array([8, 14, 14, 14, 14, 14]), "random P1 SiO5")


@pytest.fixture(scope="module")
def predictor(trained, small_store):
    return load_checkpoint(trained, store=small_store)


@pytest.fixture(scope="module")
def crystals(predictor):
    # P1 with five atoms of each of two species: the phases of both put the origin, and the
    # frames' weights, |F_s|^2, move with the atoms too
    crowded = random_crystal(10, np.random.default_rng(1), numbers=(14,))
    phased = Cell(crowded.lattice, crowded.positions, np.array([8] * 5 + [14] * 5), "random P1 Si5O5")
    frames = predictor.featurizer.frames(phased)
    assert frames.origin == "phased" and len(set(frames.weights.round(6))) > 1
    return {name: Cell.from_any(real(name)) for name in FREE} | {"P1": _p1_crystal(), "P1 phased": phased}


def _close(a, b, scale):
    return np.abs(a - b).max() <= 1e-4 * scale + 1e-7


def test_predictions_from_the_layer_equal_the_precomputed_ones(trained, small_store):
    precomputed = load_checkpoint(trained, store=small_store)
    layer = load_checkpoint(trained, store=small_store, positional_features="layer")
    structures = [real(name) for name in REAL] + [_p1_crystal()]
    assert np.abs(precomputed.predict(structures) - layer.predict(structures)).max() < 1e-5
    with pytest.raises(Exception, match="positional_features must be one of"):
        load_checkpoint(trained, store=small_store, positional_features="numpy")


def test_the_gradient_is_the_derivative(predictor, crystals):
    """Along the gradient (a symmetric motion: it keeps the group) the prediction changes at
    the rate |g|^2; in P1 each coordinate is its own finite difference."""
    for name, cell in crystals.items():
        value, gradient = predictor.value_and_gradient(cell)
        assert value == pytest.approx(predictor.predict(cell), abs=1e-5)
        norm = np.linalg.norm(gradient)
        assert norm > 1e-4, name  # free coordinates: not zero by symmetry
        step = 1e-3 / norm  # moves the atoms by 1e-3 A at most

        def moved(delta, cell=cell):
            return Cell(cell.lattice, cell.positions + delta @ np.linalg.inv(cell.lattice), cell.numbers)

        rate = (predictor.predict(moved(step * gradient)) - predictor.predict(moved(-step * gradient))) / (2 * step)
        assert rate == pytest.approx(norm**2, rel=2e-2), name
    rng = np.random.default_rng(3)
    for name in ("P1", "P1 phased"):
        _check_coordinate_differences(predictor, crystals[name])
        _check_directional_differences(predictor, crystals[name], rng)


def _check_directional_differences(predictor, cell, rng):
    """In P1 any motion keeps the group: along random directions, central differences of the
    prediction (moving atoms by 1e-3 A at most) equal the gradient's projection to 0.5%."""
    gradient = predictor.gradient(cell)
    inverse = np.linalg.inv(cell.lattice)
    for _ in range(3):
        direction = rng.normal(size=gradient.shape)
        direction *= 1e-3 / np.abs(direction).max()
        ahead = predictor.predict(Cell(cell.lattice, cell.positions + direction @ inverse, cell.numbers))
        behind = predictor.predict(Cell(cell.lattice, cell.positions - direction @ inverse, cell.numbers))
        assert (ahead - behind) / 2 == pytest.approx(float((gradient * direction).sum()), rel=5e-3), cell.label


def _check_coordinate_differences(predictor, cell):
    gradient = predictor.gradient(cell)
    for atom, axis in [(0, 0), (2, 1), (5, 2)]:
        delta = np.zeros_like(cell.positions)
        delta[atom, axis] = 1e-3
        change = predictor.predict(
            Cell(cell.lattice, cell.positions + delta @ np.linalg.inv(cell.lattice), cell.numbers)
        ) - predictor.predict(Cell(cell.lattice, cell.positions - delta @ np.linalg.inv(cell.lattice), cell.numbers))
        assert change / 2e-3 == pytest.approx(gradient[atom, axis], rel=2e-2, abs=1e-4)


def test_the_gradient_is_the_same_for_every_description_of_the_crystal(predictor, crystals):
    rng = np.random.default_rng(0)
    for name, cell in crystals.items():
        gradient = predictor.gradient(cell)
        scale = np.abs(gradient).max()
        assert np.abs(gradient.sum(axis=0)).max() < 1e-5 * scale + 1e-8, name  # a translation changes nothing
        same_cell = {
            "reordered": permuted(cell, rng.permutation(cell.n_atoms)),
            "origin shifted": cell_change(cell, np.eye(3), rng.random(3)),
            "another cell": cell_change(cell, random_unimodular(rng)),
            **{f"relabelled {label}": cell_change(cell, matrix) for label, matrix in RELABELLINGS.items()},
        }
        for how, (other, source) in same_cell.items():
            assert _close(predictor.gradient(other), gradient[source], scale), f"{name}, {how}"
        mirror, source = mirrored(cell)  # r -> -r: in the e3 invariance the same crystal, turned inside out
        assert _close(predictor.gradient(mirror), -gradient[source], scale), f"{name}, mirrored"
        turned, source = rotated(cell, rng)
        rotation = np.linalg.solve(cell.lattice, turned.lattice)  # r' = r Q^T
        assert _close(predictor.gradient(turned), gradient[source] @ rotation, scale), f"{name}, rotated"


@pytest.mark.parametrize("supercell", ["2x1x1", "[[1,1,0],[-1,1,0],[0,0,1]]"])
def test_a_supercells_copies_share_their_atoms_gradient(predictor, crystals, supercell):
    for name in ("TiO2", "P1", "P1 phased"):
        cell = crystals[name]
        gradient = predictor.gradient(cell)
        bigger, source = cell_change(cell, SUPERCELLS[supercell])
        summed = np.zeros_like(gradient)
        np.add.at(summed, source, predictor.gradient(bigger))
        assert _close(summed, gradient, np.abs(gradient).max()), f"{name}, {supercell}"


def test_the_readmes_climb_runs_as_written(trained, small_store, tmp_path, monkeypatch):
    """README: a structure moved along the gradient of its prediction keeps its space group
    at every step, and the prediction climbs."""
    from .helpers import readme_python_block

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("BASISDB_STORE", str(small_store))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "cft").symlink_to(trained, target_is_directory=True)
    real("LiFePO4").to(filename="LiFePO4.cif")
    namespace: dict = {}
    exec(readme_python_block("value, gradient = m.value_and_gradient(cell)"), namespace)
    path = np.array(namespace["path"])
    assert len(path) == 10 and (np.diff(path) > 0).all(), path
    assert (tmp_path / "climb.png").stat().st_size > 10_000
